// Import of the reference project's SAE checkpoint (torch.save zip: data.pkl + data/<key>
// storages) without Python: a minimal zip reader for stored entries and a restricted pickle
// machine that knows dicts, OrderedDict, tuples, lists, scalars and tensor rebuilds only.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <variant>

#include "core/error.h"
#include "sae/sae.h"

namespace cl {
namespace {

// ------------------------------------------------------------------------------------------
// Zip (PyTorch writes entries uncompressed, "stored").

uint32_t rd32(const unsigned char* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24); }
uint16_t rd16(const unsigned char* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

class ZipArchive {
 public:
  ZipArchive(std::vector<unsigned char> bytes, std::string path) : b_(std::move(bytes)), path_(std::move(path)) {
    if (b_.size() < 22 || rd32(b_.data()) != 0x04034b50)
      throw_input("{}: not a zip archive (torch.save >= 1.6 format expected)", path_);
    int64_t eocd = -1;
    for (int64_t i = static_cast<int64_t>(b_.size()) - 22; i >= 0 && i >= static_cast<int64_t>(b_.size()) - 65557; --i)
      if (rd32(&b_[static_cast<size_t>(i)]) == 0x06054b50) {
        eocd = i;
        break;
      }
    if (eocd < 0) throw_input("{}: zip end-of-directory record not found", path_);
    const unsigned char* e = &b_[static_cast<size_t>(eocd)];
    const uint16_t n_entries = rd16(e + 10);
    uint64_t cd = rd32(e + 16);
    if (cd == 0xffffffffu) throw_input("{}: zip64 archives are not supported", path_);
    for (uint16_t k = 0; k < n_entries; ++k) {
      if (cd + 46 > b_.size() || rd32(&b_[cd]) != 0x02014b50) throw_input("{}: broken zip central directory", path_);
      const unsigned char* c = &b_[cd];
      const uint16_t method = rd16(c + 10);
      const uint32_t csize = rd32(c + 20), usize = rd32(c + 24);
      const uint16_t nlen = rd16(c + 28), xlen = rd16(c + 30), clen = rd16(c + 32);
      // 64-bit arithmetic throughout: a local offset near 2^32 must not wrap past the bounds check.
      const uint64_t local = rd32(c + 42);
      if (cd + 46 + nlen > b_.size()) throw_input("{}: broken zip central directory", path_);
      std::string name(reinterpret_cast<const char*>(c + 46), nlen);
      if (local + 30 > b_.size()) throw_input("{}: broken zip entry {}", path_, name);
      const unsigned char* l = &b_[local];
      const uint64_t data = local + 30 + rd16(l + 26) + rd16(l + 28);
      if (data + csize > b_.size()) throw_input("{}: zip entry {} runs past the end of the file", path_, name);
      entries_[name] = Entry{method, data, csize, usize};
      cd += 46 + nlen + xlen + clen;
    }
  }
  // Entry whose name ends with "/" + suffix (the archive's top folder is the file's stem).
  std::string read(const std::string& suffix) const {
    for (const auto& [name, en] : entries_) {
      if (name == suffix || (name.size() > suffix.size() + 1 && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
                             name[name.size() - suffix.size() - 1] == '/')) {
        if (en.method != 0)
          throw_input("{}: zip entry {} is compressed (method {}), expected stored entries as torch.save writes", path_,
                      name, en.method);
        return std::string(reinterpret_cast<const char*>(&b_[en.offset]), en.csize);
      }
    }
    throw_input("{}: zip entry '{}' not found", path_, suffix);
  }

 private:
  struct Entry {
    uint16_t method;
    uint64_t offset, csize, usize;
  };
  std::vector<unsigned char> b_;
  std::string path_;
  std::map<std::string, Entry> entries_;
};

// ------------------------------------------------------------------------------------------
// Pickle values.

struct Obj;
using ObjP = std::shared_ptr<Obj>;

struct TensorRef {
  std::string key, dtype;  // storage key and storage class (FloatStorage, ...)
  int64_t offset = 0;
  std::vector<int64_t> size, stride;
};

struct Obj {
  enum Kind { None, Bool, Int, Float, Str, Tuple, List, Dict, Global, Storage, Tensor, Other } kind = None;
  int64_t i = 0;
  double f = 0;
  std::string s;                              // Str, Global ("module name"), Storage dtype
  std::vector<ObjP> items;                    // Tuple, List
  std::vector<std::pair<ObjP, ObjP>> dict;    // Dict (insertion order)
  TensorRef tensor;
  std::string storage_key;
  int depth = 0;  // nesting below this object; bounded so no traversal or destructor recurses deeply
};

ObjP mk(Obj::Kind k) {
  auto o = std::make_shared<Obj>();
  o->kind = k;
  return o;
}

class Unpickler {
 public:
  Unpickler(const std::string& data, std::string path) : d_(data), path_(std::move(path)) {}

  ObjP load() {
    while (true) {
      const uint8_t op = u8();
      switch (op) {
        case 0x80: u8(); break;                                   // PROTO
        case 0x95: pos_ += 8; break;                              // FRAME
        case '}': push(mk(Obj::Dict)); break;                     // EMPTY_DICT
        case ']': push(mk(Obj::List)); break;                     // EMPTY_LIST
        case ')': push(mk(Obj::Tuple)); break;                    // EMPTY_TUPLE
        case '(': marks_.push_back(stack_.size()); break;         // MARK
        case 'N': push(mk(Obj::None)); break;
        case 0x88: case 0x89: {                                   // NEWTRUE / NEWFALSE
          auto o = mk(Obj::Bool);
          o->i = op == 0x88;
          push(o);
          break;
        }
        case 'K': push_int(u8()); break;                          // BININT1
        case 'M': push_int(rd16(take(2))); break;                 // BININT2
        case 'J': push_int(static_cast<int32_t>(rd32(take(4)))); break;  // BININT
        case 0x8a: {                                              // LONG1
          const uint8_t n = u8();
          const unsigned char* p = take(n);
          int64_t v = 0;
          for (int k = n - 1; k >= 0; --k) v = (v << 8) | p[k];
          if (n > 0 && n < 8 && (p[n - 1] & 0x80)) v -= int64_t(1) << (8 * n);
          push_int(v);
          break;
        }
        case 'G': {                                               // BINFLOAT (big endian)
          const unsigned char* p = take(8);
          uint64_t bits = 0;
          for (int k = 0; k < 8; ++k) bits = (bits << 8) | p[k];
          auto o = mk(Obj::Float);
          std::memcpy(&o->f, &bits, 8);
          push(o);
          break;
        }
        case 'X': push_str(rd32(take(4))); break;                 // BINUNICODE
        case 0x8c: push_str(u8()); break;                         // SHORT_BINUNICODE
        case 'T': push_str(rd32(take(4))); break;                 // BINSTRING
        case 'U': push_str(u8()); break;                          // SHORT_BINSTRING
        case 'B': push_str(rd32(take(4))); break;                 // BINBYTES
        case 'C': push_str(u8()); break;                          // SHORT_BINBYTES
        case 'c': {                                               // GLOBAL "module\nname\n"
          auto o = mk(Obj::Global);
          const std::string mod = line(), name = line();
          o->s = mod + " " + name;
          push(o);
          break;
        }
        case 0x93: {                                              // STACK_GLOBAL
          auto name = pop(), mod = pop();
          auto o = mk(Obj::Global);
          o->s = mod->s + " " + name->s;
          push(o);
          break;
        }
        case 'q': memo_[u8()] = top(); break;                     // BINPUT
        case 'r': memo_[rd32(take(4))] = top(); break;            // LONG_BINPUT
        case 0x94: memo_[memo_.size()] = top(); break;            // MEMOIZE
        case 'h': push(memo_get(u8())); break;                    // BINGET
        case 'j': push(memo_get(rd32(take(4)))); break;           // LONG_BINGET
        case 't': {                                               // TUPLE
          auto o = mk(Obj::Tuple);
          o->items = pop_mark();
          for (auto& v : o->items) nest(o, v);
          push(o);
          break;
        }
        case 0x85: case 0x86: case 0x87: {                        // TUPLE1/2/3
          const int n = op - 0x84;
          auto o = mk(Obj::Tuple);
          o->items.resize(n);
          for (int k = n - 1; k >= 0; --k) o->items[k] = pop();
          for (auto& v : o->items) nest(o, v);
          push(o);
          break;
        }
        case 'l': {                                               // LIST
          auto o = mk(Obj::List);
          o->items = pop_mark();
          for (auto& v : o->items) nest(o, v);
          push(o);
          break;
        }
        case 'a': {                                               // APPEND
          auto v = pop();
          nest(top(), v);
          top()->items.push_back(v);
          break;
        }
        case 'e': {                                               // APPENDS
          auto vs = pop_mark();
          for (auto& v : vs) nest(top(), v), top()->items.push_back(v);
          break;
        }
        case 'd': {                                               // DICT
          auto vs = pop_mark();
          auto o = mk(Obj::Dict);
          for (size_t k = 0; k + 1 < vs.size(); k += 2) nest(o, vs[k]), nest(o, vs[k + 1]), o->dict.emplace_back(vs[k], vs[k + 1]);
          push(o);
          break;
        }
        case 's': {                                               // SETITEM
          auto v = pop(), k = pop();
          set_item(top(), k, v);
          break;
        }
        case 'u': {                                               // SETITEMS
          auto vs = pop_mark();
          for (size_t k = 0; k + 1 < vs.size(); k += 2) set_item(top(), vs[k], vs[k + 1]);
          break;
        }
        case 'Q': {                                               // BINPERSID
          auto pid = pop();
          // ('storage', <class StorageType>, key, location, numel)
          if (pid->kind != Obj::Tuple || pid->items.size() < 3 || pid->items[0]->s != "storage" ||
              pid->items[1]->kind != Obj::Global || pid->items[2]->kind != Obj::Str)
            fail("unexpected persistent id");
          auto o = mk(Obj::Storage);
          o->s = pid->items[1]->s;
          o->storage_key = pid->items[2]->s;
          push(o);
          break;
        }
        case 'R': {                                               // REDUCE
          auto args = pop(), fn = pop();
          push(reduce(fn, args));
          break;
        }
        case 0x81: {                                              // NEWOBJ
          pop();
          auto cls = pop();
          push(reduce(cls, mk(Obj::Tuple)));
          break;
        }
        case 'b': pop(); break;                                   // BUILD: state ignored (e.g. _metadata)
        case '.': return pop();                                   // STOP
        default:
          fail(fmt::format("unsupported pickle opcode 0x{:02x}", op));
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw_input("{}: data.pkl at byte {}: {} (only torch.save'd dicts of tensors are supported)", path_, pos_, what);
  }
  const unsigned char* take(size_t n) {
    if (pos_ + n > d_.size()) fail("truncated pickle");
    const auto* p = reinterpret_cast<const unsigned char*>(d_.data() + pos_);
    pos_ += n;
    return p;
  }
  uint8_t u8() { return *take(1); }
  std::string line() {
    const size_t e = d_.find('\n', pos_);
    if (e == std::string::npos) fail("truncated GLOBAL");
    std::string s = d_.substr(pos_, e - pos_);
    pos_ = e + 1;
    return s;
  }
  void push(ObjP o) { stack_.push_back(std::move(o)); }
  void push_int(int64_t v) {
    auto o = mk(Obj::Int);
    o->i = v;
    push(o);
  }
  void push_str(size_t n) {
    auto o = mk(Obj::Str);
    o->s = std::string(reinterpret_cast<const char*>(take(n)), n);
    push(o);
  }
  ObjP pop() {
    if (stack_.empty()) fail("stack underflow");
    auto o = stack_.back();
    stack_.pop_back();
    return o;
  }
  ObjP top() {
    if (stack_.empty()) fail("stack underflow");
    return stack_.back();
  }
  std::vector<ObjP> pop_mark() {
    if (marks_.empty()) fail("missing MARK");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<ObjP> v(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return v;
  }
  ObjP memo_get(size_t k) {
    auto it = memo_.find(k);
    if (it == memo_.end()) fail("memo key missing");
    return it->second;
  }
  void set_item(const ObjP& d, const ObjP& k, const ObjP& v) {
    if (d->kind != Obj::Dict) fail("SETITEM on a non-dict");
    nest(d, k);
    nest(d, v);
    d->dict.emplace_back(k, v);
  }
  // A state dict nests a few levels; a crafted pickle nesting millions deep would overflow the
  // stack in the recursive destruction of the objects (and a list appended to itself, through
  // the memo, would nest without end).
  static constexpr int kMaxDepth = 64;
  void nest(const ObjP& parent, const ObjP& child) {
    if (!child) return;
    parent->depth = std::max(parent->depth, child->depth + 1);
    if (parent->depth > kMaxDepth) fail(fmt::format("objects nested deeper than {}", kMaxDepth));
  }
  ObjP reduce(const ObjP& fn, const ObjP& args) {
    if (fn->kind != Obj::Global) fail("REDUCE of a non-global");
    if (args->kind != Obj::Tuple) fail("REDUCE arguments are not a tuple");
    const std::string& g = fn->s;
    if (g == "collections OrderedDict" || g == "builtins dict") return mk(Obj::Dict);
    if (g == "torch._utils _rebuild_tensor_v2" || g == "torch._utils _rebuild_tensor") {
      // (storage, storage_offset, size, stride, ...)
      if (args->items.size() < 4 || args->items[0]->kind != Obj::Storage || args->items[1]->kind != Obj::Int ||
          args->items[2]->kind != Obj::Tuple || args->items[3]->kind != Obj::Tuple)
        fail("bad tensor rebuild arguments");
      auto o = mk(Obj::Tensor);
      o->tensor.key = args->items[0]->storage_key;
      o->tensor.dtype = args->items[0]->s;
      o->tensor.offset = args->items[1]->i;
      for (auto& x : args->items[2]->items) o->tensor.size.push_back(x->i);
      for (auto& x : args->items[3]->items) o->tensor.stride.push_back(x->i);
      return o;
    }
    if (g == "torch._utils _rebuild_parameter") {
      if (args->items.empty()) fail("bad parameter rebuild arguments");
      return args->items[0];
    }
    return mk(Obj::Other);  // unknown objects are kept opaque; only the tensors matter here
  }

  const std::string& d_;
  std::string path_;
  size_t pos_ = 0;
  std::vector<ObjP> stack_;
  std::vector<size_t> marks_;
  std::map<size_t, ObjP> memo_;
};

ObjP dict_get(const ObjP& d, const std::string& key) {
  if (!d || d->kind != Obj::Dict) return nullptr;
  for (auto& [k, v] : d->dict)
    if (k->kind == Obj::Str && k->s == key) return v;
  return nullptr;
}

// Materialises a tensor as float32 in C order, honouring offset and strides.
std::vector<float> tensor_data(const ZipArchive& zip, const TensorRef& t, const std::string& path,
                               const std::string& name) {
  const std::string raw = zip.read("data/" + t.key);
  size_t esize = 0;
  if (t.dtype == "torch FloatStorage")
    esize = 4;
  else if (t.dtype == "torch DoubleStorage")
    esize = 8;
  else
    throw_input("{}: tensor {} has storage {}, expected torch FloatStorage or DoubleStorage", path, name, t.dtype);
  // Every bound in 128-bit arithmetic: crafted offsets near 2^62 used to wrap (off + 1) * esize
  // and read before the buffer.
  using i128 = __int128;
  const i128 n_storage = static_cast<i128>(raw.size() / esize);
  i128 numel = 1, lo = t.offset, hi = t.offset;
  for (size_t k = 0; k < t.size.size(); ++k) {
    if (t.size[k] < 0) throw_input("{}: tensor {} has size {} in dim {}, expected >= 0", path, name, t.size[k], k);
    numel *= t.size[k];
    if (numel > n_storage) break;
    if (t.size[k] == 0) continue;
    const i128 span = static_cast<i128>(t.size[k] - 1) * t.stride[k];
    (span < 0 ? lo : hi) += span;
  }
  if (numel > n_storage)
    throw_input("{}: tensor {} has more elements than its storage holds ({})", path, name,
                static_cast<int64_t>(n_storage));
  if (numel > 0 && (lo < 0 || hi >= n_storage))
    throw_input("{}: tensor {} indexes past its storage ({} bytes)", path, name, raw.size());
  std::vector<float> out(static_cast<size_t>(numel));
  const int64_t nd = static_cast<int64_t>(t.size.size());
  std::vector<int64_t> idx(static_cast<size_t>(nd), 0);
  for (int64_t e = 0; e < static_cast<int64_t>(numel); ++e) {
    int64_t off = t.offset;
    for (int64_t k = 0; k < nd; ++k) off += idx[static_cast<size_t>(k)] * t.stride[static_cast<size_t>(k)];
    CL_ASSERT(off >= 0 && off < static_cast<int64_t>(n_storage), "tensor offset checked above");
    if (esize == 4) {
      float v;
      std::memcpy(&v, raw.data() + off * 4, 4);
      out[static_cast<size_t>(e)] = v;
    } else {
      double v;
      std::memcpy(&v, raw.data() + off * 8, 8);
      out[static_cast<size_t>(e)] = static_cast<float>(v);
    }
    for (int64_t k = nd - 1; k >= 0; --k) {
      if (++idx[static_cast<size_t>(k)] < t.size[static_cast<size_t>(k)]) break;
      idx[static_cast<size_t>(k)] = 0;
    }
  }
  return out;
}

}  // namespace

namespace sae {

SaeWeights import_reference_pth(const std::string& pth_path) {
  std::ifstream in(pth_path, std::ios::binary);
  if (!in) throw_input("{}: cannot open checkpoint", pth_path);
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ZipArchive zip(std::move(bytes), pth_path);
  const std::string pkl = zip.read("data.pkl");
  Unpickler up(pkl, pth_path);
  ObjP root = up.load();
  ObjP state = dict_get(root, "model_state_dict");
  if (!state) state = root;  // a bare state dict
  auto get = [&](const std::string& key, size_t rank) -> const TensorRef& {
    ObjP o = dict_get(state, key);
    if (!o || o->kind != Obj::Tensor) throw_input("{}: state dict has no tensor '{}'", pth_path, key);
    if (o->tensor.size.size() != rank || o->tensor.stride.size() != rank)
      throw_input("{}: '{}' has {} dims, expected {}", pth_path, key, o->tensor.size.size(), rank);
    return o->tensor;
  };
  const TensorRef& tb = get("tied_bias", 2);
  const TensorRef& we = get("encoder._weight", 3);
  const TensorRef& be = get("encoder._bias", 2);
  const TensorRef& wd = get("decoder._weight", 3);
  const int64_t D = tb.size[1], n = we.size[1];
  if (D < 1 || n < 1) throw_input("{}: D {} and {} latents, expected at least 1 of each", pth_path, D, n);
  if (tb.size[0] != 1 || we.size[0] != 1 || be.size[0] != 1 || wd.size[0] != 1)
    throw_input("{}: n_components {}, only 1 is supported", pth_path, we.size[0]);
  if (we.size[2] != D || be.size[1] != n || wd.size[1] != D || wd.size[2] != n)
    throw_input("{}: inconsistent shapes: tied_bias [1,{}], encoder._weight [1,{},{}], encoder._bias [1,{}], "
                "decoder._weight [1,{},{}]",
                pth_path, D, n, we.size[2], be.size[1], wd.size[1], wd.size[2]);
  auto enc = tensor_data(zip, we, pth_path, "encoder._weight");  // [n, D]
  auto dec = tensor_data(zip, wd, pth_path, "decoder._weight");  // [D, n]
  SaeWeights w;
  w.arch = "relu-l1";
  w.d_in = D;
  w.n_latents = n;
  w.W_enc.resize(static_cast<size_t>(D * n));
  w.W_dec.resize(static_cast<size_t>(D * n));
  for (int64_t j = 0; j < n; ++j)
    for (int64_t d = 0; d < D; ++d) {
      w.W_enc[static_cast<size_t>(d * n + j)] = enc[static_cast<size_t>(j * D + d)];
      w.W_dec[static_cast<size_t>(j * D + d)] = dec[static_cast<size_t>(d * n + j)];
    }
  w.b_enc = tensor_data(zip, be, pth_path, "encoder._bias");
  w.b_dec = tensor_data(zip, tb, pth_path, "tied_bias");
  for (const auto* v : {&w.W_enc, &w.W_dec, &w.b_enc, &w.b_dec})
    for (float x : *v)
      if (!std::isfinite(x)) throw_input("{}: weights contain {}, expected finite values", pth_path, x);
  nlohmann::json mc = nlohmann::json::object();
  if (ObjP cfg = dict_get(root, "model_config"); cfg && cfg->kind == Obj::Dict) {
    for (auto& [k, v] : cfg->dict) {
      if (k->kind != Obj::Str) continue;
      if (v->kind == Obj::Int || v->kind == Obj::Bool) mc[k->s] = v->i;
      else if (v->kind == Obj::Float) mc[k->s] = v->f;
      else if (v->kind == Obj::Str) mc[k->s] = v->s;
    }
  }
  if (mc.contains("n_input_features") && mc["n_input_features"].get<int64_t>() != D)
    throw_input("{}: model_config n_input_features {}, tensors have D {}", pth_path, mc["n_input_features"].get<int64_t>(), D);
  if (mc.contains("n_learned_features") && mc["n_learned_features"].get<int64_t>() != n)
    throw_input("{}: model_config n_learned_features {}, tensors have {}", pth_path,
                mc["n_learned_features"].get<int64_t>(), n);
  w.config = {{"imported_from", pth_path}, {"model_config", mc}, {"arch", "relu-l1"}};
  return w;
}

}  // namespace sae
}  // namespace cl
