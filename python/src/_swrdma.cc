// The Python extension `swrdma._swrdma`: a thin layer over the C API (client/swrdma.h), linked
// statically (libswrdma_c_static). The public, documented API is swrdma/__init__.py; this module
// is its engine: it reads with the GIL released, copies verified data out of the registered
// buffers into an arena (no Python object may be made without the GIL), then makes the bytes.
//
// Errors: the C status and message go to the error factory swrdma/__init__.py installs
// (_set_error_factory), which picks the exception class; per-fid errors of a batch are returned
// as exception objects made the same way.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "client/swrdma.h"

namespace nb = nanobind;

namespace {

nb::object g_error_factory;  // (code, message, fid, needed) -> exception instance

// An exception instance for a C status (set by swrdma/__init__.py at import).
nb::object MakeError(int code, const char* message, const char* fid, size_t needed = 0) {
  if (!g_error_factory.is_valid()) {
    throw std::runtime_error(std::string(swrdma_strerror(code)) + ": " + message);
  }
  return g_error_factory(code, nb::str(message), fid ? nb::object(nb::str(fid)) : nb::none(),
                         needed);
}

[[noreturn]] void Raise(int code, const char* message, const char* fid = nullptr,
                        size_t needed = 0) {
  nb::object e = MakeError(code, message, fid, needed);
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(e.ptr())), e.ptr());
  throw nb::python_error();
}

// UTF-8 view of a str item (valid while the str lives); raises TypeError otherwise.
const char* Utf8(PyObject* o, const char* what) {
  if (!PyUnicode_Check(o)) {
    throw nb::type_error((std::string(what) + " must be str").c_str());
  }
  const char* s = PyUnicode_AsUTF8AndSize(o, nullptr);
  if (s == nullptr) throw nb::python_error();
  return s;
}

// The fids (and tokens) of a batch as C strings pointing into the Python strs, which the
// PySequence_Fast results keep alive for the duration of the call.
struct Batch {
  nb::object fid_seq, jwt_seq;
  std::vector<const char*> fids, jwts;
  size_t n = 0;

  Batch(nb::handle fids_obj, nb::handle jwts_obj) {
    if (PyUnicode_Check(fids_obj.ptr()))
      throw nb::type_error("fids must be a sequence of str, not a str");
    fid_seq = nb::steal(PySequence_Fast(fids_obj.ptr(), "fids must be a sequence of str"));
    if (!fid_seq.is_valid()) throw nb::python_error();
    n = static_cast<size_t>(PySequence_Fast_GET_SIZE(fid_seq.ptr()));
    PyObject** items = PySequence_Fast_ITEMS(fid_seq.ptr());
    fids.resize(n);
    for (size_t i = 0; i < n; ++i)
      fids[i] = Utf8(items[i], "each fid");
    if (!jwts_obj.is_none()) {
      jwt_seq = nb::steal(PySequence_Fast(jwts_obj.ptr(), "jwts must be a sequence"));
      if (!jwt_seq.is_valid()) throw nb::python_error();
      if (static_cast<size_t>(PySequence_Fast_GET_SIZE(jwt_seq.ptr())) != n) {
        throw nb::value_error("jwts must have one entry (str or None) per fid");
      }
      PyObject** tokens = PySequence_Fast_ITEMS(jwt_seq.ptr());
      jwts.resize(n);
      for (size_t i = 0; i < n; ++i) {
        jwts[i] = tokens[i] == Py_None ? nullptr : Utf8(tokens[i], "each jwt");
      }
    }
  }
};

// One read's outcome, recorded without the GIL.
struct Slot {
  size_t offset = 0;  // into the arena
  size_t len = 0;
  int status = SWRDMA_E_INTERNAL;
  std::string message;
};

class Client {
 public:
  Client(std::optional<std::string> agent, std::optional<std::string> master,
         std::optional<std::string> transports, uint32_t timeout_ms, bool fallback_http,
         uint32_t max_inflight, uint32_t lookup_cache_ttl_ms, uint32_t agent_port,
         std::optional<std::string> agent_map, bool read_tokens, bool hugepages)
      : pid_(getpid()) {
    swrdma_client_options_t o;
    swrdma_client_options_init(&o);
    o.agent_url = agent ? agent->c_str() : nullptr;
    o.master_url = master ? master->c_str() : nullptr;
    o.transports = transports ? transports->c_str() : nullptr;
    o.timeout_ms = timeout_ms;
    o.fallback = fallback_http ? SWRDMA_FALLBACK_HTTP : SWRDMA_FALLBACK_NONE;
    if (max_inflight != 0) o.max_inflight = max_inflight;
    o.lookup_cache_ttl_ms = lookup_cache_ttl_ms;
    if (agent_port != 0) o.agent_port = agent_port;
    o.agent_map = agent_map ? agent_map->c_str() : nullptr;
    o.read_tokens = read_tokens ? 1 : 0;
    o.hugepages = hugepages ? 1 : 0;
    int rc;
    std::string error;
    {
      nb::gil_scoped_release unlocked;
      rc = swrdma_client_open(&o, &c_);
      if (rc != SWRDMA_OK) error = swrdma_last_error(nullptr);
    }
    if (rc != SWRDMA_OK) Raise(rc, error.c_str());
  }

  ~Client() {
    // A Client inherited through fork() is not closed in the child: its UCX worker and
    // registered memory belong to the parent.
    if (c_ != nullptr && getpid() == pid_) swrdma_client_close(c_);
  }

  void Close() {
    Use use(this, /*may_be_closed=*/true);
    if (c_ != nullptr) {
      nb::gil_scoped_release unlocked;
      swrdma_client_close(c_);
      c_ = nullptr;
    }
  }

  bool closed() const { return c_ == nullptr; }

  nb::bytes Read(nb::str fid, std::optional<nb::str> jwt, bool raw) {
    Use use(this);
    const char* f = Utf8(fid.ptr(), "fid");
    const char* j = jwt ? Utf8(jwt->ptr(), "jwt") : nullptr;
    ReadSlots(1, &f, jwt ? &j : nullptr, raw);
    const Slot& s = slots_[0];
    if (s.status != SWRDMA_OK) Raise(s.status, s.message.c_str(), f);
    return nb::bytes(reinterpret_cast<const char*>(arena_.data()) + s.offset, s.len);
  }

  nb::list ReadMany(nb::handle fids, nb::handle jwts, bool raw) {
    Use use(this);
    Batch b(fids, jwts);
    ReadSlots(b.n, b.fids.data(), b.jwts.empty() ? nullptr : b.jwts.data(), raw);
    nb::list out = nb::steal<nb::list>(PyList_New(static_cast<Py_ssize_t>(b.n)));
    for (size_t i = 0; i < b.n; ++i) {
      PyList_SET_ITEM(out.ptr(), static_cast<Py_ssize_t>(i), Value(i, b.fids[i]).release().ptr());
    }
    return out;
  }

  // (index, bytes | exception) pairs in the order the reads completed.
  nb::list ReadCompleted(nb::handle fids, nb::handle jwts, bool raw) {
    Use use(this);
    Batch b(fids, jwts);
    ReadSlots(b.n, b.fids.data(), b.jwts.empty() ? nullptr : b.jwts.data(), raw);
    nb::list out = nb::steal<nb::list>(PyList_New(static_cast<Py_ssize_t>(b.n)));
    for (size_t k = 0; k < b.n; ++k) {
      const size_t i = order_[k];
      PyList_SET_ITEM(out.ptr(), static_cast<Py_ssize_t>(k),
                      nb::make_tuple(i, Value(i, b.fids[i])).release().ptr());
    }
    return out;
  }

  size_t ReadInto(nb::str fid, nb::handle buffer, std::optional<nb::str> jwt, bool raw) {
    Use use(this);
    const char* f = Utf8(fid.ptr(), "fid");
    const char* j = jwt ? Utf8(jwt->ptr(), "jwt") : nullptr;
    Py_buffer view;
    if (PyObject_GetBuffer(buffer.ptr(), &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) != 0) {
      throw nb::python_error();  // TypeError/BufferError: not writable, not contiguous
    }
    size_t len = 0;
    int rc;
    std::string error;
    {
      nb::gil_scoped_release unlocked;
      Timed timed{c_ns_};
      rc = swrdma_read(c_, f, j, raw ? SWRDMA_READ_RAW : 0, view.buf, static_cast<size_t>(view.len),
                       &len);
      if (rc != SWRDMA_OK) error = swrdma_last_error(c_);
    }
    PyBuffer_Release(&view);
    if (rc != SWRDMA_OK) Raise(rc, error.c_str(), f, rc == SWRDMA_E_TOO_SMALL ? len : 0);
    return len;
  }

  // Each fid into its buffer: a list of byte counts or exception objects, in order.
  nb::list ReadManyInto(nb::handle fids, nb::handle buffers, nb::handle jwts, bool raw) {
    Use use(this);
    Batch b(fids, jwts);
    nb::object seq = nb::steal(PySequence_Fast(buffers.ptr(), "buffers must be a sequence"));
    if (!seq.is_valid()) throw nb::python_error();
    if (static_cast<size_t>(PySequence_Fast_GET_SIZE(seq.ptr())) != b.n) {
      throw nb::value_error("buffers must have one writable buffer per fid");
    }
    std::vector<Py_buffer> views(b.n);
    size_t got = 0;
    struct Release {  // the buffers are released however this ends
      std::vector<Py_buffer>& v;
      size_t& n;
      ~Release() {
        for (size_t i = 0; i < n; ++i)
          PyBuffer_Release(&v[i]);
      }
    } release{views, got};
    PyObject** items = PySequence_Fast_ITEMS(seq.ptr());
    std::vector<void*> bufs(b.n);
    std::vector<size_t> caps(b.n), lens(b.n);
    std::vector<int> statuses(b.n);
    for (; got < b.n; ++got) {
      if (PyObject_GetBuffer(items[got], &views[got], PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) != 0) {
        throw nb::python_error();
      }
      bufs[got] = views[got].buf;
      caps[got] = static_cast<size_t>(views[got].len);
    }
    {
      nb::gil_scoped_release unlocked;
      Timed timed{c_ns_};
      (void)swrdma_read_many(c_, b.n, b.fids.data(), b.jwts.empty() ? nullptr : b.jwts.data(),
                             raw ? SWRDMA_READ_RAW : 0, bufs.data(), caps.data(), lens.data(),
                             statuses.data());
    }
    nb::list out = nb::steal<nb::list>(PyList_New(static_cast<Py_ssize_t>(b.n)));
    for (size_t i = 0; i < b.n; ++i) {
      nb::object v;
      if (statuses[i] == SWRDMA_OK) {
        v = nb::int_(lens[i]);
      } else {
        // The C API names only the first failure; each other one gets its code's name.
        std::string message = std::string(swrdma_strerror(statuses[i])) + ": " + b.fids[i];
        if (statuses[i] == SWRDMA_E_TOO_SMALL) {
          message += ": needs a buffer of " + std::to_string(lens[i]) + " bytes, got " +
                     std::to_string(caps[i]);
        }
        v = MakeError(statuses[i], message.c_str(), b.fids[i],
                      statuses[i] == SWRDMA_E_TOO_SMALL ? lens[i] : 0);
      }
      PyList_SET_ITEM(out.ptr(), static_cast<Py_ssize_t>(i), v.release().ptr());
    }
    return out;
  }

  std::string Info() {
    Use use(this);
    return Text(swrdma_client_info);
  }

  std::string Transports() {
    Use use(this);
    return Text(swrdma_client_transports);
  }

  uint64_t CTimeNs() const { return c_ns_; }

  nb::dict Stats() {
    Use use(this);
    swrdma_stats_t s;
    std::memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    const int rc = swrdma_client_stats(c_, &s);
    if (rc != SWRDMA_OK) Raise(rc, swrdma_last_error(c_));
    nb::dict d;
    d["reads"] = s.reads;
    d["bytes"] = s.bytes;
    d["lookups"] = s.lookups;
    d["lookup_cache_hits"] = s.lookup_cache_hits;
    d["retries"] = s.retries;
    d["crc_failures"] = s.crc_failures;
    d["http_fallbacks"] = s.http_fallbacks;
    d["reconnects"] = s.reconnects;
    d["reg_cache_hits"] = s.reg_cache_hits;
    d["reg_cache_misses"] = s.reg_cache_misses;
    d["registered_bytes"] = s.registered_bytes;
    d["buffers_out"] = s.buffers_out;
    return d;
  }

 private:
  // Guards every call: the client is open, used by one thread at a time, in its own process.
  // (A Client is not thread-safe; sharing one would corrupt its UCX worker, so misuse raises.)
  class Use {
   public:
    explicit Use(Client* c, bool may_be_closed = false) : c_(c) {
      if (c->pid_ != getpid()) {
        Raise(SWRDMA_E_INVALID_ARGUMENT,
              "this Client was opened in another process (before fork()): open a new Client "
              "in each worker process");
      }
      if (c->busy_.exchange(true)) {
        Raise(SWRDMA_E_INVALID_ARGUMENT,
              "this Client is in use by another thread: use one Client per thread");
      }
      if (!may_be_closed && c->c_ == nullptr) {
        c->busy_ = false;
        Raise(SWRDMA_E_INVALID_ARGUMENT, "the Client is closed");
      }
    }
    ~Use() { c_->busy_ = false; }
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;

   private:
    Client* c_;
  };

  // Called by the C API without the GIL, once per fid. Must not throw (it runs inside the
  // read loop): running out of memory for the copy becomes that fid's error.
  static void OnRead(void* ctx, size_t index, int status, const void* data, size_t len,
                     const char* message) noexcept {
    auto* self = static_cast<Client*>(ctx);
    Slot& s = self->slots_[index];
    try {
      s.status = status;
      s.len = len;
      s.offset = self->used_;
      if (status == SWRDMA_OK) {
        if (self->used_ + len > self->arena_.size()) {
          // Offsets, not pointers, so growing is fine; doubling keeps it amortized.
          self->arena_.resize(std::max(self->arena_.size() * 2, self->used_ + len));
        }
        if (len != 0) std::memcpy(self->arena_.data() + self->used_, data, len);
        self->used_ += len;
      } else {
        s.message = message;
      }
    } catch (...) {
      s.status = SWRDMA_E_RESOURCE_EXHAUSTED;
      s.len = 0;
    }
    self->order_.push_back(index);  // reserved for n: does not allocate
  }

  // Reads a batch into slots_ / arena_ (completion order in order_), the GIL released.
  void ReadSlots(size_t n, const char* const* fids, const char* const* jwts, bool raw) {
    slots_.assign(n, Slot{});
    order_.clear();
    order_.reserve(n);
    used_ = 0;
    int rc;
    std::string error;
    {
      nb::gil_scoped_release unlocked;
      Timed timed{c_ns_};
      rc = swrdma_read_each(c_, n, fids, jwts, raw ? SWRDMA_READ_RAW : 0, &Client::OnRead, this);
      if (rc != SWRDMA_OK && order_.size() != n) error = swrdma_last_error(c_);
    }
    // An error of the call itself (nothing was read): every fid gets it.
    if (order_.size() != n) Raise(rc, error.c_str());
    // Big one-off batches should not pin their memory in the Client for its life.
    if (arena_.size() > (64u << 20) && used_ < arena_.size() / 4) {
      arena_.resize(used_);
      arena_.shrink_to_fit();
    }
  }

  nb::object Value(size_t i, const char* fid) {
    const Slot& s = slots_[i];
    if (s.status == SWRDMA_OK) {
      return nb::steal(PyBytes_FromStringAndSize(
          reinterpret_cast<const char*>(arena_.data()) + s.offset, static_cast<Py_ssize_t>(s.len)));
    }
    return MakeError(s.status, s.message.c_str(), fid);
  }

  template <typename Fn>
  std::string Text(Fn fn) {
    std::string text(256, '\0');
    for (;;) {
      size_t len = 0;
      int rc;
      {
        nb::gil_scoped_release unlocked;
        rc = fn(c_, text.data(), text.size(), &len);
      }
      if (rc == SWRDMA_E_TOO_SMALL) {
        text.resize(len + 1);
        continue;
      }
      if (rc != SWRDMA_OK) Raise(rc, swrdma_last_error(c_));
      text.resize(len);
      return text;
    }
  }

  // Time spent inside the C API's read calls (GIL released), for the benchmark's split of
  // the per-read cost into the library's and this binding's (c_time_ns()).
  struct Timed {
    uint64_t& total;
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    ~Timed() {
      total += static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                         std::chrono::steady_clock::now() - start)
                                         .count());
    }
  };
  uint64_t c_ns_ = 0;

  swrdma_client_t* c_ = nullptr;
  pid_t pid_;
  std::atomic<bool> busy_{false};
  std::vector<uint8_t> arena_;
  size_t used_ = 0;
  std::vector<Slot> slots_;
  std::vector<size_t> order_;
};

}  // namespace

NB_MODULE(_swrdma, m) {
  m.doc() = "Engine of the swrdma package (the C API, linked in); use the swrdma module.";
  m.def("version", [] { return std::string(swrdma_version()); });
  m.def("strerror", [](int code) { return std::string(swrdma_strerror(code)); });
  m.def("_set_error_factory", [](nb::object f) { g_error_factory = std::move(f); });
  // Drop the factory before the interpreter tears modules down.
  nb::module_::import_("atexit").attr("register")(
      nb::cpp_function([] { g_error_factory = nb::object(); }));

  nb::class_<Client>(m, "Client")
      .def(nb::init<std::optional<std::string>, std::optional<std::string>,
                    std::optional<std::string>, uint32_t, bool, uint32_t, uint32_t, uint32_t,
                    std::optional<std::string>, bool, bool>(),
           nb::arg("agent").none(), nb::arg("master").none(), nb::arg("transports").none(),
           nb::arg("timeout_ms"), nb::arg("fallback_http"), nb::arg("max_inflight"),
           nb::arg("lookup_cache_ttl_ms"), nb::arg("agent_port"), nb::arg("agent_map").none(),
           nb::arg("read_tokens"), nb::arg("hugepages"))
      .def("close", &Client::Close)
      .def_prop_ro("closed", &Client::closed)
      .def("read", &Client::Read, nb::arg("fid"), nb::arg("jwt").none(), nb::arg("raw"))
      .def("read_many", &Client::ReadMany, nb::arg("fids"), nb::arg("jwts").none(), nb::arg("raw"))
      .def("read_completed", &Client::ReadCompleted, nb::arg("fids"), nb::arg("jwts").none(),
           nb::arg("raw"))
      .def("read_into", &Client::ReadInto, nb::arg("fid"), nb::arg("buffer"), nb::arg("jwt").none(),
           nb::arg("raw"))
      .def("read_many_into", &Client::ReadManyInto, nb::arg("fids"), nb::arg("buffers"),
           nb::arg("jwts").none(), nb::arg("raw"))
      .def("info", &Client::Info)
      .def("transports", &Client::Transports)
      .def("stats", &Client::Stats)
      .def("c_time_ns", &Client::CTimeNs,
           "Nanoseconds spent inside the C API's read calls so far (GIL released).");
}
