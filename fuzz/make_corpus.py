#!/usr/bin/env python3
"""Writes the hand-made seed inputs of the fuzz targets into fuzz/corpus/<target>/.

Seeds are tiny, synthetic and deterministic (no real volume files): valid examples of each input
format plus a few near-misses, in the layout each fuzz_<target>.cc documents. Run it again after
changing a target's input layout:  python3 fuzz/make_corpus.py
"""
import base64
import hashlib
import hmac
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def legacy(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def needle(version, cookie, nid, data=b"", flags=0, name=b"", mime=b"", last_modified=None,
           ttl=None, pairs=b"", append_at_ns=0, legacy_crc=False):
    """A needle record as protocol/needle.h describes it (big-endian, padded to 8)."""
    if version == 1:
        body = data
    elif data:
        body = struct.pack(">I", len(data)) + data
        if name:
            flags |= 0x02
        if mime:
            flags |= 0x04
        if last_modified is not None:
            flags |= 0x08
        if ttl is not None:
            flags |= 0x10
        if pairs:
            flags |= 0x20
        body += bytes([flags])
        if name:
            body += bytes([len(name)]) + name
        if mime:
            body += bytes([len(mime)]) + mime
        if last_modified is not None:
            body += last_modified.to_bytes(5, "big")
        if ttl is not None:
            body += bytes(ttl)
        if pairs:
            body += struct.pack(">H", len(pairs)) + pairs
    else:
        body = b""
    crc = crc32c(data) if data else 0
    out = struct.pack(">IQI", cookie, nid, len(body)) + body
    out += struct.pack(">I", legacy(crc) if legacy_crc and data else crc)
    if version == 3:
        out += struct.pack(">Q", append_at_ns)
    return out + b"\0" * (8 - len(out) % 8)


def idx_entry(nid, offset, size, width=4):
    if width == 4:
        return struct.pack(">QII", nid, offset // 8, size)
    units = offset // 8
    return struct.pack(">QIBI", nid, units & 0xFFFFFFFF, units >> 32, size)


def mp(v) -> bytes:
    """Minimal msgpack encoder: dict, list, str, bytes (bin), non-negative int, None, bool."""
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if v < 128:
            return bytes([v])
        return b"\xcf" + struct.pack(">Q", v)
    if isinstance(v, str):
        b = v.encode()
        return (bytes([0xA0 | len(b)]) if len(b) < 32 else b"\xd9" + bytes([len(b)])) + b
    if isinstance(v, bytes):
        return b"\xc4" + bytes([len(v)]) + v
    if isinstance(v, list):
        return bytes([0x90 | len(v)]) + b"".join(mp(x) for x in v)
    if isinstance(v, dict):
        return bytes([0x80 | len(v)]) + b"".join(mp(k) + mp(x) for k, x in v.items())
    raise TypeError(v)


def seeds():
    s = {}
    s["fuzz_file_id"] = [b"3,01637037d6", b"3,01637037d6_2", b"1,ffffffffffffffff12345678",
                         b"4294967295,0000000001", b"3,01637037d6_", b"7,1234567g9",
                         b"3,01637037d6_18446744073709551615", b"1,,", b"0637037d6"]

    data = b"hello, needle"
    s["fuzz_needle"] = [
        b"\x00" + needle(1, 0x637037D6, 1, data),
        b"\x01" + needle(2, 1, 2, data, name=b"a.txt", mime=b"text/plain",
                         last_modified=1700000000, ttl=(3, 4), pairs=b'{"k":"v"}'),
        b"\x02" + needle(3, 2, 3, data, flags=0x01, append_at_ns=123456789),
        b"\x02" + needle(3, 2, 3, data, legacy_crc=True),
        b"\x02" + needle(3, 5, 4),  # size 0: a tombstone
        b"\x02" + needle(3, 6, 5, b"x" * 40, flags=0x80)[:30],  # truncated
    ]

    def idx(sel, dat_size, entries):
        return bytes([sel]) + struct.pack("<Q", dat_size) + b"".join(entries)

    s["fuzz_idx"] = [
        idx(4, 4096, [idx_entry(1, 8, 100), idx_entry(2, 136, 200), idx_entry(1, 0, 0xFFFFFFFF)]),
        idx(4, 256, [idx_entry(5, 8, 100), idx_entry(3, 136, 200), idx_entry(5, 400, 10),
                     idx_entry(3, 512, 0xFFFFFFFF)]),
        idx(5, 1 << 40, [idx_entry(9, 8 << 32, 50, 5), idx_entry(9, 64, 50, 5)]),
        idx(2, 0, [idx_entry(1, 8, 100)]) + b"\x01\x02\x03",  # damaged tail
        # selector bit 7: also through the file reader (ReadIdxTail)
        idx(0x84, 4096, [idx_entry(1, 8, 100), idx_entry(2, 136, 200), idx_entry(2, 0, 0)]),
        idx(0x85, 1 << 20, [idx_entry(7, 8, 9, 5), idx_entry(8, 64, 9, 5)]) + b"\x07" * 5,
    ]

    vif = (b'{"files": [], "version": 3, "replication": "", "bytesOffset": 0, '
           b'"datFileSize": "2590912", "expireAtSec": "0", "readOnly": false, '
           b'"ecShardConfig": {"dataShards": 10, "parityShards": 4, '
           b'"encodeTsNs": "1765000000123456789"}, "readOnlyCanDelete": false}')
    s["fuzz_ec"] = [
        b"\x00" + vif,
        b"\x00" + b'{"dat_file_size": 7, "ec_shard_config": {"data_shards": "6", "parity_shards": 3}}',
        b"\x00" + b'{"BytesOffset": 5, "DestroyTime": 9, "ecShardConfig": {"dataShards": 40}}',
        b"\x00",
        # layout: large, small (LE u64), data shards, shard dat size (LE u64), offset, size bytes
        b"\x01" + struct.pack("<QQB", 99, 9, 9) + struct.pack("<Q", 250)[:7]
        + struct.pack("<Q", 1995) + b"\x1e\x00",
        b"\x01" + struct.pack("<QQB", 4095, 511, 5) + struct.pack("<Q", 431104)[:7]
        + struct.pack("<Q", 2580000) + b"\xff\x07",
        b"\x02" + b"\x00" + struct.pack("<Q", 5) + idx_entry(9, 8, 1) + idx_entry(5, 16, 2)
        + idx_entry(1, 24, 0xFFFFFFFF) + b"\x01\x02",
        b"\x02" + b"\x01" + struct.pack("<Q", 77) + idx_entry(77, 123 << 32, 9, 5),
    ]

    fid = "3,01637037d6"
    s["fuzz_wire"] = [
        b"\x00" + mp({"protocol": 1, "fids": [fid, "3,01637037d6_1"]}),
        b"\x02" + mp({"protocol": 1, "fids": [fid] * 3}),
        b"\x03" + b'{"protocol":1,"fids":["3,01637037d6","bad"]}',
        b"\x01" + b'{"protocol":1,"agent_version":"0.1","worker_address":"0a0b",'
                  b'"transports":["tcp"],"volume_count":1,"exposure":"region"}',
        b"\x00" + mp({"protocol": 1, "results": [{"fid": fid, "status": "ok", "volume_id": 3,
                                                  "generation": 1, "address": 4096,
                                                  "length": 64, "size": 20}]}),
        b"\x00" + mp({"protocol": 1, "volume_id": 3, "regions": [
            {"file_offset": 0, "address": 1, "length": 8, "rkey": b"\x01\x02"}]}),
        b"\x01" + b"[" * 20 + b"]" * 20,  # deeper than the limit
        b"\x00" + b"\x91" * 20 + b"\xc0",
        # regression: a JSON map key longer than max_str passed (msgpack refused it)
        b"\x03" + b'{"' + b"k" * 300 + b'":1,"protocol":1,"fids":[]}',
    ]

    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=")

    def jwt(claims, key=b"fuzz-read-key", header=b'{"alg":"HS256","typ":"JWT"}'):
        signing = b64(header) + b"." + b64(claims)
        return signing + b"." + b64(hmac.new(key, signing, hashlib.sha256).digest())

    s["fuzz_jwt"] = [
        b"\x00" + jwt(b'{"fid":"3,01637037d6","exp":1700000100}'),
        b"\x00" + jwt(b'{"fid":"3,01637037d6"}', key=b"wrong"),
        b"\x00" + jwt(b'{"fid":"3,01637037d6","exp":1600000000}'),
        b"\x00" + jwt(b'{"fid":"3,01637037d6"}', header=b'{"alg":"none"}'),
        b"\x00" + b"a.b.c",
        b"\x01" + b'{"alg":"HS256"}\n{"fid":"3,01637037d6_2","exp":1700000100.5,"nbf":1}',
        b"\x01" + b'{"alg":"HS256"}\n{"fid":7,"exp":"soon"}',
        b"\x01" + b'{"alg":"HS256","crit":["x"]}\n{"fid":"1,01"}',
    ]

    s["fuzz_agent_handler"] = [
        b"GET /healthz",
        b"GET /readyz",
        b"GET /metrics",
        b"GET /v1/info\nAccept: application/json\n\n",
        b"GET /v1/volumes",
        b"GET /v1/volumes/1?format=json",
        b"GET /v1/volumes/1/sample?n=5&seed=3",
        b"POST /v1/lookup?format=json\nContent-Type: application/json\n\n"
        b'{"protocol":1,"fids":["@fid","1,ff00000000","9,0100000000","x"]}',
        b"POST /v1/lookup\nContent-Type: application/msgpack\n\n" + mp({"protocol": 1,
                                                                         "fids": ["@fid", "@fid"]}),
        b"GET /@fid",
        b"HEAD /@fid",
        b"GET /1/@fid.txt",
        b"GET /1,0100000000",
        b"DELETE /@fid",
        # with read tokens required ('!'): header, query and body tokens; a wrong one
        b"!GET /@fid\nAuthorization: Bearer @jwt\n\n",
        b"!GET /@fid?jwt=@jwt",
        b"!GET /@fid?jwt=e30.e30.AAAA",
        b"!POST /v1/lookup?format=json\nContent-Type: application/json\n\n"
        b'{"protocol":1,"fids":["@fid","@fid"],"jwts":["@jwt"]}',
        b"!GET /v1/volumes/1",
        # regressions: invalid UTF-8 echoed into JSON answers (500 / unparseable JSON before)
        b"GET \x981,0100000000",
        b"POST /v1/lookup?format=json\nContent-Type: application/msgpack\n\n"
        + b"\x82\xa8protocol\x01\xa4fids\x91\xa4" + b"1,\xff\xfe",
    ]

    s["fuzz_http_parser"] = [
        b"\x00GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
        b"\x07POST /v1/lookup HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
        b"Content-Length: 13\r\n\r\n{\"protocol\":1}",
        b"\x03POST /v1/lookup HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n",
        b"\xffGET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        b"\x10POST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n"
        b"Connection: close\r\n\r\nok",
        b"\x01GET / HTTP/1.1\r\nX: " + b"a" * 200 + b"\r\n\r\n",
    ]
    # Checked read requests and reply headers (protocol/read_messages.h), little-endian.
    def read_request(rid, entries, version=1, flags=0):
        b = struct.pack("<IHHQI", 0x51525753, version, flags, rid, len(entries))
        for fid, token in entries:
            b += bytes([len(fid)]) + fid + struct.pack("<H", len(token)) + token
        return b

    s["fuzz_read_messages"] = [
        read_request(1, [(b"3,01637037d6", b"")]),
        read_request(2, [(b"3,01637037d6", b"eyJhbGciOiJIUzI1NiJ9.e30.x"), (b"4,0a_1", b"")]),
        read_request(3, [(b"1,01", b"")], version=2),
        struct.pack("<IHBBQIIQQII", 0x50525753, 1, 0, 3, 1, 0, 3, 7, 4096, 4000, 0),
        read_request(4, [(b"3,01637037d6", b"")], flags=2),  # EC pieces asked for
        # An EcPieces block: a 40-byte record, pieces [0,16) and [30,40), their bytes.
        struct.pack("<QIQQQQ", 40, 2, 0, 16, 30, 10) + bytes(range(26)),
    ]
    # The agent's reply stream over TCP to a request (id 1) for three fids
    # (client/tcp_checked_reader.h): header + data per entry.
    def reply(status, index, data, needle_size=None, rid=1):
        size = len(data) if needle_size is None else needle_size
        return struct.pack("<IHBBQIIQQII", 0x50525753, 1, status, 3, rid, index, 3, 7, len(data),
                           size, 0) + data

    s["fuzz_tcp_reply"] = [
        reply(0, 0, b"r" * 64) + reply(2, 1, b"deleted") + reply(4, 2, b"unknown volume"),
        reply(0, 2, b"") + reply(0, 0, b"x" * 100) + reply(1, 1, b""),
        reply(0, 0, b"r" * 64)[:70],
        reply(0, 0, b"r" * 10, needle_size=1) + reply(0, 0, b"again"),
        reply(0, 1, b"y" * 5000, rid=2),
    ]
    # The read-token verifier's requests and replies (agent/token_verifier.h), little-endian;
    # the first byte selects: even, a request to the verifier; odd, a reply to the data plane.
    def vreq(op, rid, token):
        return struct.pack("<BQH", op, rid, len(token)) + token

    def vreply(op, rid, status, fid, text, exp=None):
        return (struct.pack("<BQBBBQBQ", op, rid, status, 1, exp is not None, exp or 0, 0, 0) +
                struct.pack("<H", len(fid)) + fid + struct.pack("<H", len(text)) + text)

    s["fuzz_verifier"] = [
        b"\x00" + vreq(1, 1, jwt(b'{"fid":"3,01637037d6","exp":4102444800}')),
        b"\x00" + vreq(1, 2, jwt(b'{"fid":"3,01"}', key=b"other")),
        b"\x00" + vreq(3, 3, b""),
        b"\x00" + vreq(2, 4, b""),
        b"\x00" + vreq(1, 5, b"a.b"),
        b"\x01" + vreply(1, 1, 0, b"3,01637037d6", b"", exp=4102444800),
        b"\x01" + vreply(1, 2, 1, b"", b"token expired"),
        b"\x01" + vreply(3, 3, 0, b"", b"security.toml [jwt.signing.read]"),
    ]
    return s


def main():
    for target, inputs in seeds().items():
        d = os.path.join(CORPUS, target)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for i, data in enumerate(inputs):
            with open(os.path.join(d, f"seed-{i:02d}"), "wb") as f:
                f.write(data)
        print(f"{target}: {len(inputs)} seeds")


if __name__ == "__main__":
    main()
