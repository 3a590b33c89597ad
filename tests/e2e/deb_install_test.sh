#!/usr/bin/env bash
# End-to-end: the Debian package, installed into the system and used from /usr/bin.
#
#   deb_install_test.sh CPACK_COMMAND BUILD_DIR
#
# Builds swrdma_<version>_<arch>.deb with cpack in BUILD_DIR, checks its control fields and file
# list, installs it with dpkg -i, then: the installed swrdma-agent answers --version (the package
# version) and --help (every flag documented in /etc/default/swrdma-agent and back), the installed
# `swrdma mkvolume` writes a volume, the installed agent serves it on 127.0.0.1 (kernel-chosen
# port) as the user `swrdma` the postinst created, as the unit and the Docker image run it
# (setpriv, no capabilities; packaging/docker/Dockerfile `USER swrdma`), the installed `swrdma get`
# reads every live needle (equal to the HTTP fallback and the manifest sizes), SIGTERM stops the
# agent with status 0,
# `systemd-analyze verify` accepts the installed unit (when available) and it keeps its hardening
# (User=swrdma, no capabilities, @system-service), and `dpkg -r` removes the binaries. The package is removed (and
# purged) on every exit path.
#
# Installing into the system is opt-in: runs only as root with CI=true or SWRDMA_TEST_INSTALL=1,
# and never over an swrdma that is already installed. Otherwise exits 77 (skipped).
set -euo pipefail
# shellcheck source=SCRIPTDIR/e2e_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"
e2e_self_deadline 540 "$@"

[[ $# -eq 2 ]] || e2e_fail "usage: $0 CPACK_COMMAND BUILD_DIR"
CPACK=$1
BUILD=$(realpath "$2")
PKG=swrdma
BIN=/usr/bin

if [[ "$(id -u)" -ne 0 ]]; then
  e2e_skip "installs a .deb into the system: run as root with CI=true or SWRDMA_TEST_INSTALL=1"
fi
if [[ "${CI:-}" != true && "${SWRDMA_TEST_INSTALL:-}" != 1 ]]; then
  e2e_skip "installs a .deb into this system; set SWRDMA_TEST_INSTALL=1 (or CI=true) to allow it"
fi
e2e_need_or_skip dpkg dpkg-deb dpkg-shlibdeps curl jq
[[ -f "$BUILD/CPackConfig.cmake" ]] || e2e_fail "$BUILD/CPackConfig.cmake is missing; configure first"
status=$(dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null || true)
if [[ -n "$status" && "$status" != *not-installed ]]; then
  e2e_skip "package $PKG is known to dpkg here ($status); this test will not replace or purge it"
fi
for f in "$BIN/swrdma-agent" "$BIN/swrdma"; do
  [[ ! -e "$f" ]] || e2e_skip "$f exists outside the package; this test will not overwrite it"
done

e2e_workdir

# ---- build and inspect the package --------------------------------------------------------------
E2E_CMD_TIMEOUT=300 e2e_t "$CPACK" -G DEB --config "$BUILD/CPackConfig.cmake" -B "$W/pkg" \
  >cpack.log 2>&1 || {
  tail -n 30 cpack.log >&2
  e2e_fail "cpack -G DEB failed"
}
debs=("$W"/pkg/swrdma_*.deb)
{ ((${#debs[@]} == 1)) && [[ -f "${debs[0]}" ]]; } || e2e_fail "cpack did not write one swrdma_*.deb"
DEB=${debs[0]}
e2e_log "built $(basename "$DEB") ($(stat -c %s "$DEB") bytes)"
[[ "$(dpkg-deb -f "$DEB" Package)" == "$PKG" ]] || e2e_fail "package name is not $PKG"
VERSION=$(dpkg-deb -f "$DEB" Version)
[[ -n "$VERSION" ]] || e2e_fail "the package has no Version"
[[ -n "$(dpkg-deb -f "$DEB" Maintainer)" ]] || e2e_fail "the package has no Maintainer"
[[ -n "$(dpkg-deb -f "$DEB" Description)" ]] || e2e_fail "the package has no Description"
depends=$(dpkg-deb -f "$DEB" Depends)
for lib in libucx0 libibverbs1 libc6 'adduser | systemd'; do  # (RocksDB is linked statically)
  grep -q "$lib" <<<"$depends" || e2e_fail "Depends lacks $lib: $depends"
done
dpkg-deb -c "$DEB" | awk '{ print $6 }' | sed 's|^\./|/|' >files.txt
for f in /usr/bin/swrdma-agent /usr/bin/swrdma /usr/lib/systemd/system/swrdma-agent.service \
  /usr/lib/sysusers.d/swrdma.conf \
  /etc/default/swrdma-agent /etc/swrdma/agent.toml /usr/share/swrdma/grafana/swrdma-agent.json \
  /usr/share/doc/swrdma/README.md /usr/share/doc/swrdma/deploy.md /usr/share/doc/swrdma/security.md \
  /usr/include/swrdma.h /usr/lib/libswrdma.so; do
  grep -qx "$f" files.txt || e2e_fail "the package lacks $f"
done
for f in /etc/default/swrdma-agent /etc/swrdma/agent.toml; do
  dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./conffiles 2>/dev/null | grep -qx "$f" ||
    e2e_fail "$f is not a conffile"
done
e2e_log "package $PKG $VERSION: control fields, files and conffiles as expected"

# ---- install ----------------------------------------------------------------------------------
# Registered before dpkg -i, so a failed or partial install is removed too. The postinst creates
# the system user `swrdma` (kept on purge, as Debian does); this test removes it when it made it.
e2e_on_cleanup "dpkg -r $PKG; dpkg -P $PKG"
if ! getent passwd swrdma >/dev/null; then
  e2e_on_cleanup "userdel swrdma 2>/dev/null; groupdel swrdma 2>/dev/null; true"
fi
e2e_t dpkg -i "$DEB" >dpkg.log 2>&1 || {
  cat dpkg.log >&2
  e2e_fail "dpkg -i $DEB failed"
}
[[ -x "$BIN/swrdma-agent" && -x "$BIN/swrdma" ]] || e2e_fail "dpkg -i did not install the binaries"
getent passwd swrdma >/dev/null || e2e_fail "the postinst did not create the user swrdma"
if systemctl is-active --quiet swrdma-agent 2>/dev/null; then
  e2e_fail "installing the package started swrdma-agent.service (it must not)"
fi

e2e_t "$BIN/swrdma-agent" --version >version.txt || e2e_fail "swrdma-agent --version failed"
grep -qF "$VERSION" version.txt || e2e_fail "--version says '$(cat version.txt)', package $VERSION"
e2e_t "$BIN/swrdma-agent" --help >help.txt || e2e_fail "swrdma-agent --help failed"
grep -q -- '--dir' help.txt || e2e_fail "--help does not list --dir"
e2e_t "$BIN/swrdma" --help >/dev/null || e2e_fail "swrdma --help failed"

# /etc/default/swrdma-agent documents every flag of --help, and nothing else.
grep -o -- '--[a-z][a-z-]*' help.txt | grep -vx -- '--help\|--version' | sort -u >flags.help
grep '^#' /etc/default/swrdma-agent | grep -o -- '--[a-z][a-z-]*' | grep -vx -- '--help\|--version' |
  sort -u >flags.default
grep -vx -- '--supervise' flags.help >flags.help.cmp || true  # documented as --no-supervise
grep -vx -- '--supervise' flags.default >flags.default.cmp || true
missing=$(comm -23 flags.help.cmp flags.default.cmp | tr '\n' ' ')
[[ -z "$missing" ]] || e2e_fail "/etc/default/swrdma-agent does not document: $missing"
extra=$(comm -13 flags.help.cmp flags.default.cmp | tr '\n' ' ')
[[ -z "$extra" ]] || e2e_fail "/etc/default/swrdma-agent documents unknown flags: $extra"
# shellcheck disable=SC1091
SWRDMA_AGENT_ARGS=$(. /etc/default/swrdma-agent && printf '%s' "${SWRDMA_AGENT_ARGS:-}")
grep -q -- '--dir ' <<<"$SWRDMA_AGENT_ARGS" || e2e_fail "the default file sets no --dir"
e2e_log "installed swrdma-agent --version ($VERSION) and --help work; the default file documents all flags"

# The C API as a binding would use it: the installed header and library, found by the default
# search paths (ldconfig ran: the package's shlibs trigger).
if command -v cc >/dev/null; then
  printf '#include <stdio.h>\n#include <swrdma.h>\nint main(void) { printf("%%s\\n", swrdma_version()); return 0; }\n' >capi.c
  e2e_t cc -o capi capi.c -lswrdma || e2e_fail "compiling against the installed swrdma.h / -lswrdma failed"
  ./capi >capi.txt || e2e_fail "a program linked with the installed libswrdma.so does not run"
  grep -qF "$VERSION" capi.txt || e2e_fail "swrdma_version() says '$(cat capi.txt)', package $VERSION"
  e2e_log "the installed C API links and runs: swrdma_version() = $(cat capi.txt)"
else
  e2e_log "no C compiler here: the installed C API is listed but not linked"
fi

# ---- serve and read with the installed binaries --------------------------------------------------
AGENT=$BIN/swrdma-agent
CLI=$BIN/swrdma
D=$W/volumes
e2e_mkvolume "$D" 3 --needles 120 --min 1 --max 300K --gzip-fraction 0.3 --delete-fraction 0.1
e2e_mkvolume "$D" 4 --version 2 --legacy-crc --needles 40 --min 1 --max 5M --seed 4
cat m3.tsv m4.tsv >all.tsv
e2e_fids live all.tsv >live.txt
(($(wc -l <live.txt) > 100)) || e2e_fail "mkvolume wrote too few live needles"

# As the package's user, with what the image gives it: the volumes readable (SeaweedFS writes
# them 0644), an index directory of its own, no capabilities.
chmod 755 "$W"
mkdir -p "$W/index"
chown swrdma:swrdma "$W/index"
E2E_AGENT_PREFIX=(setpriv --reuid=swrdma --regid=swrdma --init-groups --inh-caps=-all
  --bounding-set=-all --no-new-privs)
e2e_serve "$D"
SERVING=$(e2e_serving_pid)
[[ -n "$SERVING" && "$(stat -c %U "/proc/$SERVING")" == swrdma ]] ||
  e2e_fail "the installed agent (pid ${SERVING:-none}) does not run as swrdma:" \
    "$(ps -o user=,pid=,args= -p "${SERVING:-1}" 2>&1)"
e2e_t "$CLI" info --agent "$AG" >info.txt || e2e_fail "installed swrdma info failed"
grep -qF "$VERSION" info.txt || e2e_fail "swrdma info does not show agent version $VERSION"
e2e_get_all "$W/got" live.txt tcp --transports tcp
e2e_check_sizes "$W/got" "$W/all.tsv"
e2e_http_fetch_all live.txt "$W/http"
e2e_compare_dirs "$W/got" "$W/http" "$W/live.txt"
e2e_log "installed swrdma get read $(wc -l <live.txt) needles from the installed agent (user swrdma)"
e2e_sigterm_agent

# ---- the unit ---------------------------------------------------------------------------------
UNIT=/usr/lib/systemd/system/swrdma-agent.service
[[ -f "$UNIT" ]] || UNIT=/lib/systemd/system/swrdma-agent.service
[[ -f "$UNIT" ]] || e2e_fail "the unit file is not installed"
# shellcheck disable=SC2016  # the literal $SWRDMA_AGENT_ARGS, expanded by systemd
grep -qx 'ExecStart=/usr/bin/swrdma-agent $SWRDMA_AGENT_ARGS' "$UNIT" ||
  e2e_fail "the installed unit's ExecStart is not /usr/bin/swrdma-agent \$SWRDMA_AGENT_ARGS"
if command -v systemd-analyze >/dev/null; then
  e2e_t systemd-analyze verify "$UNIT" >verify.txt 2>&1 || {
    cat verify.txt >&2
    e2e_fail "systemd-analyze verify $UNIT failed"
  }
  e2e_log "systemd-analyze verify accepts $UNIT"
  # The hardening the unit must keep (docs/deploy.md); the exposure score is logged.
  for want in User=swrdma NoNewPrivileges=yes CapabilityBoundingSet= ProtectSystem=strict \
    ProtectHome=yes PrivateTmp=yes SystemCallFilter=@system-service LimitMEMLOCK=infinity; do
    grep -qx "$want" "$UNIT" || e2e_fail "the unit lacks $want"
  done
  if e2e_t systemd-analyze security --offline=true "$UNIT" >security.txt 2>&1; then
    e2e_log "systemd-analyze security: $(grep -i 'overall exposure' security.txt || tail -n1 security.txt)"
  else
    e2e_log "systemd-analyze security --offline not usable here: $(tail -n1 security.txt)"
  fi
else
  e2e_log "systemd-analyze not available: unit not verified"
fi

# ---- removal ----------------------------------------------------------------------------------
e2e_t dpkg -r "$PKG" >/dev/null || e2e_fail "dpkg -r $PKG failed"
for f in "$BIN/swrdma-agent" "$BIN/swrdma" "$UNIT" /usr/lib/libswrdma.so /usr/include/swrdma.h; do
  [[ ! -e "$f" ]] || e2e_fail "dpkg -r left $f behind"
done
e2e_t dpkg -P "$PKG" >/dev/null || e2e_fail "dpkg -P $PKG failed"
[[ ! -e /etc/default/swrdma-agent ]] || e2e_fail "dpkg -P left /etc/default/swrdma-agent behind"
e2e_log "PASS"
