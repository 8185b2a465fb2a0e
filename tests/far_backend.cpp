#include "far_backend.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>

#include "core/error.h"

namespace lomo::test {

namespace {

size_t page_round(size_t bytes) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  return (bytes + page - 1) / page * page;
}

}  // namespace

void* FarAllocator::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  const size_t size = page_round(bytes);
  // Anonymous pages are zero-filled: the allocator's contract.
  void* p = ::mmap(nullptr, size, open_ ? PROT_READ | PROT_WRITE : PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw Error("far allocator: mmap of " + std::to_string(size) + " bytes");
  regions_.push_back({p, size});
  return p;
}

void FarAllocator::deallocate(void* p, size_t) {
  if (p == nullptr) return;
  const auto it =
      std::find_if(regions_.begin(), regions_.end(), [p](const Region& r) { return r.p == p; });
  LOMO_ASSERT(it != regions_.end(), "far allocator: freeing memory it did not give");
  ::munmap(it->p, it->bytes);
  regions_.erase(it);
}

void FarAllocator::set_open(bool open) {
  open_ = open;
  for (const Region& r : regions_) {
    LOMO_ASSERT(::mprotect(r.p, r.bytes, open ? PROT_READ | PROT_WRITE : PROT_NONE) == 0,
                "far allocator: mprotect failed");
  }
}

FarBackend::Reach::Reach(FarBackend& b) : b_(b) {
  if (b_.depth_++ == 0) b_.far_.set_open(true);
  ++b_.ops_;
}

FarBackend::Reach::~Reach() {
  if (--b_.depth_ == 0) b_.far_.set_open(false);
}

void FarBackend::copy_to_device(void* dst, const void* host_src, size_t bytes) {
  Reach reach(*this);
  return CpuBackend::copy_to_device(dst, host_src, bytes);
}

void FarBackend::copy_to_host(void* host_dst, const void* src, size_t bytes) {
  Reach reach(*this);
  return CpuBackend::copy_to_host(host_dst, src, bytes);
}

void FarBackend::copy(void* dst, const void* src, size_t bytes) {
  Reach reach(*this);
  return CpuBackend::copy(dst, src, bytes);
}

void FarBackend::fill(float* x, float value, int64_t n) {
  Reach reach(*this);
  return CpuBackend::fill(x, value, n);
}

void FarBackend::matmul(const Matmul& m) {
  Reach reach(*this);
  return CpuBackend::matmul(m);
}

void FarBackend::embedding_forward(float* out, const int32_t* ids, ParamView table, int64_t N) {
  Reach reach(*this);
  return CpuBackend::embedding_forward(out, ids, table, N);
}

void FarBackend::embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t N,
                                    int64_t d) {
  Reach reach(*this);
  return CpuBackend::embedding_backward(dtable, dout, ids, N, d);
}

void FarBackend::embedding_update(ParamView table, const float* dout, const int32_t* ids, int64_t N,
                                  int32_t* order, const SgdStep& s, const HeldRows& held) {
  Reach reach(*this);
  return CpuBackend::embedding_update(table, dout, ids, N, order, s, held);
}

void FarBackend::rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t N,
                                 int64_t d, double eps) {
  Reach reach(*this);
  return CpuBackend::rmsnorm_forward(y, rstd, x, w, N, d, eps);
}

void FarBackend::rmsnorm_apply(float* y, const float* x, const float* rstd, const float* w,
                               int64_t N, int64_t d) {
  Reach reach(*this);
  return CpuBackend::rmsnorm_apply(y, x, rstd, w, N, d);
}

void FarBackend::rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x,
                                  const float* rstd, const float* w, int64_t N, int64_t d) {
  Reach reach(*this);
  return CpuBackend::rmsnorm_backward(dx, dw, dy, x, rstd, w, N, d);
}

void FarBackend::rope_forward(float* x, const RopeTable& table, int64_t B, int64_t T,
                              int64_t n_heads, int64_t head_dim) {
  Reach reach(*this);
  return CpuBackend::rope_forward(x, table, B, T, n_heads, head_dim);
}

void FarBackend::rope_backward(float* dx, const RopeTable& table, int64_t B, int64_t T,
                               int64_t n_heads, int64_t head_dim) {
  Reach reach(*this);
  return CpuBackend::rope_backward(dx, table, B, T, n_heads, head_dim);
}

int64_t FarBackend::attention_workspace_elems(const AttnDims& dims) const {
  return CpuBackend::attention_workspace_elems(dims);  // shapes only: no memory
}

void FarBackend::attention_forward(float* out, float* stats, float* work, const float* q,
                                   const float* k, const float* v, const int32_t* lengths,
                                   const AttnDims& dims) {
  Reach reach(*this);
  return CpuBackend::attention_forward(out, stats, work, q, k, v, lengths, dims);
}

void FarBackend::attention_backward(float* dq, float* dk, float* dv, float* work, const float* dout,
                                    const float* stats, const float* q, const float* k,
                                    const float* v, const int32_t* lengths, const AttnDims& dims) {
  Reach reach(*this);
  return CpuBackend::attention_backward(dq, dk, dv, work, dout, stats, q, k, v, lengths, dims);
}

void FarBackend::rope_forward_at(float* x, const RopeTable& table, int64_t pos0, int64_t B,
                                 int64_t T, int64_t n_heads, int64_t head_dim) {
  Reach reach(*this);
  return CpuBackend::rope_forward_at(x, table, pos0, B, T, n_heads, head_dim);
}

int64_t FarBackend::attention_cached_workspace_elems(const KvAttnDims& dims) const {
  return CpuBackend::attention_cached_workspace_elems(dims);  // shapes only: no memory
}

void FarBackend::attention_cached(float* out, float* work, const float* q, const float* k_cache,
                                  const float* v_cache, const KvAttnDims& dims) {
  Reach reach(*this);
  return CpuBackend::attention_cached(out, work, q, k_cache, v_cache, dims);
}

void FarBackend::swiglu_forward(float* m, const float* g, const float* u, int64_t n) {
  Reach reach(*this);
  return CpuBackend::swiglu_forward(m, g, u, n);
}

void FarBackend::swiglu_backward(float* dg, float* du, const float* dm, const float* g,
                                 const float* u, int64_t n) {
  Reach reach(*this);
  return CpuBackend::swiglu_backward(dg, du, dm, g, u, n);
}

void FarBackend::add(float* y, const float* x, int64_t n) {
  Reach reach(*this);
  return CpuBackend::add(y, x, n);
}

void FarBackend::dropout(float* y, const float* x, int64_t n, float p, uint64_t key) {
  Reach reach(*this);
  return CpuBackend::dropout(y, x, n, p, key);
}

void FarBackend::dropout_add(float* y, const float* x, int64_t n, float p, float alpha,
                             uint64_t key) {
  Reach reach(*this);
  return CpuBackend::dropout_add(y, x, n, p, alpha, key);
}

void FarBackend::bias_rows(float* Y, const float* b, int64_t N, int64_t out) {
  Reach reach(*this);
  return CpuBackend::bias_rows(Y, b, N, out);
}

void FarBackend::bias_grad(float* db, const float* dY, int64_t N, int64_t out) {
  Reach reach(*this);
  return CpuBackend::bias_grad(db, dY, N, out);
}

double FarBackend::lm_head_loss(ParamView W, const LmHeadIo& io) {
  Reach reach(*this);
  return CpuBackend::lm_head_loss(W, io);
}

void FarBackend::to_f32(float* dst, ParamView src, int64_t begin, int64_t n) {
  Reach reach(*this);
  return CpuBackend::to_f32(dst, src, begin, n);
}

void FarBackend::to_bf16(uint16_t* dst, const float* src, int64_t n) {
  Reach reach(*this);
  return CpuBackend::to_bf16(dst, src, n);
}

void FarBackend::to_bf16_in_place(float* x, int64_t n) {
  Reach reach(*this);
  return CpuBackend::to_bf16_in_place(x, n);
}

void FarBackend::store(ParamView p, const float* w32, const RoundingMode& r) {
  Reach reach(*this);
  return CpuBackend::store(p, w32, r);
}

void FarBackend::fill_normal(float* x, int64_t n, uint64_t seed, uint64_t stream, double stddev,
                             int64_t first) {
  Reach reach(*this);
  return CpuBackend::fill_normal(x, n, seed, stream, stddev, first);
}

void FarBackend::clip_by_value(float* g, int64_t n, float v) {
  Reach reach(*this);
  return CpuBackend::clip_by_value(g, n, v);
}

bool FarBackend::all_finite(const float* g, int64_t n) {
  Reach reach(*this);
  return CpuBackend::all_finite(g, n);
}

bool FarBackend::any_beyond(const float* g, int64_t n, float limit) {
  Reach reach(*this);
  return CpuBackend::any_beyond(g, n, limit);
}

double FarBackend::sum_squares(const float* g, int64_t n) {
  Reach reach(*this);
  return CpuBackend::sum_squares(g, n);
}

void FarBackend::check_gradient(float* g, int64_t n, float clip, float limit,
                                GradientCheck* out) {
  Reach reach(*this);
  return CpuBackend::check_gradient(g, n, clip, limit, out);
}

void FarBackend::sgd_update(ParamView p, const float* g, const SgdStep& s) {
  Reach reach(*this);
  return CpuBackend::sgd_update(p, g, s);
}

void FarBackend::adalomo_update(ParamView p, float* g, float* row, float* col,
                                const AdaLomoStep& s) {
  Reach reach(*this);
  return CpuBackend::adalomo_update(p, g, row, col, s);
}

void FarBackend::adamw_update(ParamView p, const float* g, float* m, float* v, const AdamWStep& s) {
  Reach reach(*this);
  return CpuBackend::adamw_update(p, g, m, v, s);
}

}  // namespace lomo::test
