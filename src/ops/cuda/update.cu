// The gradient checks and the optimizer updates on the GPU (ops/backend.h; the CPU reference is
// ops/cpu/update.cpp). Per-element maths is ops/element/update.h, shared with the CPU: SGD,
// AdamW, clipping and the checks give the CPU's bits; the 16-bit write-back too, stochastic
// rounding included, since the same fp32 gives the same code.
//
// Reductions. A sum runs in two passes into a given device double (device_sum): each block
// reduces its grid-stride share with CUB into partials[block] of reduce_dev_, then one block adds
// the partials in block order. The result stays on the device; the ops that return it copy that
// one double into pinned reduce_host_ and synchronise. Nothing else in a sum depends on timing, so
// a GPU result is the same run after run; against the CPU (another summation order) it agrees to
// fp64 rounding: |gpu − cpu| ≤ ~n·2^-53·Σ|terms|. The flags (all_finite, any_beyond) are an
// atomicOr of per-block results into one device int, cleared first.
//
// AdaLomo keeps everything on the device and does not synchronise: the row sums of G are
// per-block (so r matches the CPU to rounding), the column sums run down each column in row
// order as the CPU's (so s is the CPU's bits), and Σr, Σu², Σθ² are device sums the last kernel
// reads to form lr_t, keep and step itself (element::adalomo_coefs).
#include <algorithm>
#include <cmath>
#include <cub/block/block_reduce.cuh>
#include <string>

#include "core/error.h"
#include "core/rounding.h"
#include "ops/cuda/cuda_backend.h"
#include "ops/cuda/cuda_util.h"
#include "ops/element/update.h"

namespace lomo::cuda {
namespace {

// reduce_dev_ (kReduceBytes) carved up: partials of the first pass, result slots, one flag.
constexpr int kMaxPartials = 2048;  // blocks of a reduction's first pass
enum Slot : int { kSumSlot, kRowSumSlot, kUSquaresSlot, kWSquaresSlot, kSlots };
struct ReduceScratch {
  double* partials;  // (kMaxPartials)
  double* slots;     // (kSlots)
  int* flag;         // (1)
};
ReduceScratch carve(void* reduce_dev) {
  static_assert(sizeof(double) * (kMaxPartials + kSlots) + sizeof(int) <= (size_t{1} << 16),
                "the reduction scratch outgrew kReduceBytes");
  auto* d = static_cast<double*>(reduce_dev);
  return {d, d + kMaxPartials, reinterpret_cast<int*>(d + kMaxPartials + kSlots)};
}

__device__ int64_t first_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ int64_t grid_stride() {
  return static_cast<int64_t>(blockDim.x) * gridDim.x;
}

using BlockSumD = cub::BlockReduce<double, kBlock>;
using BlockSumI = cub::BlockReduce<int, kBlock>;

// ---- reductions -------------------------------------------------------------------------------

// What a later per-backward-pass accumulator needs: the same sum added into its slot.
enum class SumInto { Overwrite, Add };

// Pass 1: partials[block] ← Σ over the block's grid-stride elements of term (term(s, i) returns
// s plus element i's term).
template <class Term>
__global__ void partial_sums_kernel(Term term, int64_t n, double* partials) {
  __shared__ typename BlockSumD::TempStorage tmp;
  double s = 0;
  for (int64_t i = first_index(); i < n; i += grid_stride()) s = term(s, i);
  const double block = BlockSumD(tmp).Sum(s);
  if (threadIdx.x == 0) partials[blockIdx.x] = block;
}

// Pass 2, one block: *out ← (or +=) Σ partials(count), each thread's share in block order.
__global__ void finish_sum_kernel(const double* partials, int count, double* out, SumInto mode) {
  __shared__ typename BlockSumD::TempStorage tmp;
  double s = 0;
  for (int b = static_cast<int>(threadIdx.x); b < count; b += blockDim.x) {
    s = element::rn::add(s, partials[b]);
  }
  const double total = BlockSumD(tmp).Sum(s);
  if (threadIdx.x == 0) *out = mode == SumInto::Add ? element::rn::add(*out, total) : total;
}

// Σ of term over n elements into the device double *out, queued on `stream` (no synchronisation).
template <class Term>
void device_sum(cudaStream_t stream, double* partials, Term term, int64_t n, double* out,
                SumInto mode, const char* what) {
  const unsigned blocks = std::min<unsigned>(grid_for(n), kMaxPartials);
  partial_sums_kernel<<<blocks, kBlock, 0, stream>>>(term, n, partials);
  check_launch(what);
  finish_sum_kernel<<<1, kBlock, 0, stream>>>(partials, static_cast<int>(blocks), out, mode);
  check_launch(what);
}

// Terms of the sums.
struct SquaresOf {  // Σ g², g(n)
  const float* g;
  __device__ double operator()(double s, int64_t i) const { return element::add_square(s, g[i]); }
};
struct ParamSquares {  // Σ θ², θ(n) in its storage
  const void* data;
  StorageDtype dtype;
  __device__ double operator()(double s, int64_t i) const {
    const float w = dtype == StorageDtype::F32
                        ? static_cast<const float*>(data)[i]
                        : load16(dtype, static_cast<const uint16_t*>(data), i);
    return element::adalomo_add_square(s, static_cast<double>(w));
  }
};
struct ValuesOf {  // Σ x, x(n)
  const float* x;
  __device__ double operator()(double s, int64_t i) const {
    return element::rn::add(s, static_cast<double>(x[i]));
  }
};

// *flag |= (pred(g_i) for some i of g(n)). *flag must be cleared before.
struct NotFinite {
  __device__ bool operator()(float g) const { return !element::finite(g); }
};
struct Beyond {
  float limit;
  __device__ bool operator()(float g) const { return element::beyond(g, limit); }
};
template <class Pred>
__global__ void any_kernel(const float* g, int64_t n, Pred pred, int* flag) {
  __shared__ typename BlockSumI::TempStorage tmp;
  int mine = 0;
  for (int64_t i = first_index(); i < n; i += grid_stride()) mine |= pred(g[i]) ? 1 : 0;
  const int block = BlockSumI(tmp).Sum(mine);
  if (threadIdx.x == 0 && block != 0) atomicOr(flag, 1);
}

// ---- element-wise updates ---------------------------------------------------------------------

// g(n) ← clip(g, v).
__global__ void clip_kernel(float* g, int64_t n, float v) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) g[i] = element::clip(g[i], v);
}

// g(n) ← c·g.
__global__ void scale_kernel(float* g, int64_t n, float c) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) g[i] = element::rn::mul(g[i], c);
}

// w(n) ← sgd(w, g) in fp32.
__global__ void sgd_f32_kernel(float* w, const float* g, int64_t n, float keep, float step) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    w[i] = element::sgd(w[i], g[i], keep, step);
  }
}

// w(n) ← sgd(w, g) read from and written back to 16-bit storage.
__global__ void sgd_16_kernel(uint16_t* w, const float* g, int64_t n, float keep, float step,
                              element::Store16 st) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    w[i] = st(element::sgd(load16(st.dtype, w, i), g[i], keep, step), i);
  }
}

// w, m, v (n) ← AdamW's step from g(n).
__global__ void adamw_kernel(float* w, const float* g, float* m, float* v, int64_t n,
                             element::AdamWCoefs k) {
  for (int64_t i = first_index(); i < n; i += grid_stride())
    element::adamw(w[i], m[i], v[i], g[i], k);
}

// ---- AdaLomo ----------------------------------------------------------------------------------

// r(rows) ← adalomo_state(β, r, Σ_j G(g_ij), cols), g(rows, cols); a block per row.
__global__ void adalomo_rows_kernel(float* r, const float* g, int64_t rows, int64_t cols,
                                    double beta) {
  __shared__ typename BlockSumD::TempStorage tmp;
  for (int64_t i = blockIdx.x; i < rows; i += gridDim.x) {
    const float* gi = g + i * cols;  // (cols)
    double m = 0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      m = element::rn::add(m, element::adalomo_g2(gi[j]));
    }
    const double sum = BlockSumD(tmp).Sum(m);
    if (threadIdx.x == 0) r[i] = element::adalomo_state(beta, r[i], sum, static_cast<double>(cols));
    __syncthreads();  // tmp is reused by the next row
  }
}

// s(cols) ← adalomo_state(β, s, Σ_i G(g_ij), rows), g(rows, cols): a thread per column, summing
// down it in row order (the CPU's order, so the same bits).
__global__ void adalomo_cols_kernel(float* s, const float* g, int64_t rows, int64_t cols,
                                    double beta) {
  for (int64_t j = first_index(); j < cols; j += grid_stride()) {
    double sum = 0;
    for (int64_t i = 0; i < rows; ++i)
      sum = element::rn::add(sum, element::adalomo_g2(g[i * cols + j]));
    s[j] = element::adalomo_state(beta, s[j], sum, static_cast<double>(rows));
  }
}

// g(rows, cols) ← u = g·(r_i / mean r)^−½ / √s_j, mean r = *rsum / rows; partials[block] ← the
// block's Σu². A block per row.
__global__ void adalomo_matrix_u_kernel(float* g, const float* r, const float* s, int64_t rows,
                                        int64_t cols, const double* rsum, double* partials) {
  __shared__ typename BlockSumD::TempStorage tmp;
  const double rmean = element::rn::div(*rsum, static_cast<double>(rows));
  double usq = 0;
  for (int64_t i = blockIdx.x; i < rows; i += gridDim.x) {
    const double rf = element::adalomo_row_factor(r[i], rmean);
    float* gi = g + i * cols;  // (cols)
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const double u = element::adalomo_u(gi[j], rf, s[j]);
      gi[j] = static_cast<float>(u);
      usq = element::adalomo_add_square(usq, u);
    }
  }
  const double block = BlockSumD(tmp).Sum(usq);
  if (threadIdx.x == 0) partials[blockIdx.x] = block;
}

// v(n) ← adalomo_state(β, v, G(g)); g(n) ← u = g / √v; partials[block] ← the block's Σu².
__global__ void adalomo_vector_u_kernel(float* g, float* v, int64_t n, double beta,
                                        double* partials) {
  __shared__ typename BlockSumD::TempStorage tmp;
  double usq = 0;
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    v[i] = element::adalomo_state(beta, v[i], element::adalomo_g2(g[i]));
    const double u = element::adalomo_u(g[i], v[i]);
    g[i] = static_cast<float>(u);
    usq = element::adalomo_add_square(usq, u);
  }
  const double block = BlockSumD(tmp).Sum(usq);
  if (threadIdx.x == 0) partials[blockIdx.x] = block;
}

// θ(n) ← sgd(θ, u, keep, step) with keep and step from *usq and *wsq (element::adalomo_coefs);
// st: the 16-bit write-back (unused for fp32).
__global__ void adalomo_apply_kernel(void* w, StorageDtype dtype, const float* u, int64_t n,
                                     const double* usq, const double* wsq, float lr, float wd,
                                     element::Store16 st) {
  const element::AdaLomoCoefs k = element::adalomo_coefs(lr, wd, *usq, *wsq, n);
  if (dtype == StorageDtype::F32) {
    float* wf = static_cast<float*>(w);  // (n)
    for (int64_t i = first_index(); i < n; i += grid_stride()) {
      wf[i] = element::sgd(wf[i], u[i], k.keep, k.step);
    }
    return;
  }
  uint16_t* wh = static_cast<uint16_t*>(w);  // (n)
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    wh[i] = st(element::sgd(load16(dtype, wh, i), u[i], k.keep, k.step), i);
  }
}

}  // namespace

// ---- the backend's members --------------------------------------------------------------------

void CudaBackend::clip_by_value(float* g, int64_t n, float v) {
  if (v <= 0 || n <= 0) return;
  clip_kernel<<<grid_for(n), kBlock, 0, stream_>>>(g, n, v);
  check_launch("clip_kernel");
}

bool CudaBackend::all_finite(const float* g, int64_t n) {
  const ReduceScratch sc = carve(reduce_dev_);
  check(cudaMemsetAsync(sc.flag, 0, sizeof(int), stream_), "all_finite: clearing the flag");
  any_kernel<<<grid_for(n), kBlock, 0, stream_>>>(g, n, NotFinite{}, sc.flag);
  check_launch("all_finite (any_kernel)");
  check(cudaMemcpyAsync(reduce_host_, sc.flag, sizeof(int), cudaMemcpyDeviceToHost, stream_),
        "all_finite: reading the flag");
  synchronize("all_finite");
  return *static_cast<const int*>(reduce_host_) == 0;
}

bool CudaBackend::any_beyond(const float* g, int64_t n, float limit) {
  const ReduceScratch sc = carve(reduce_dev_);
  check(cudaMemsetAsync(sc.flag, 0, sizeof(int), stream_), "any_beyond: clearing the flag");
  any_kernel<<<grid_for(n), kBlock, 0, stream_>>>(g, n, Beyond{limit}, sc.flag);
  check_launch("any_beyond (any_kernel)");
  check(cudaMemcpyAsync(reduce_host_, sc.flag, sizeof(int), cudaMemcpyDeviceToHost, stream_),
        "any_beyond: reading the flag");
  synchronize("any_beyond");
  return *static_cast<const int*>(reduce_host_) != 0;
}

double CudaBackend::sum_squares(const float* g, int64_t n) {
  const ReduceScratch sc = carve(reduce_dev_);
  double* out = sc.slots + kSumSlot;
  device_sum(stream_, sc.partials, SquaresOf{g}, n, out, SumInto::Overwrite,
             "sum_squares (partial_sums_kernel, finish_sum_kernel)");
  check(cudaMemcpyAsync(reduce_host_, out, sizeof(double), cudaMemcpyDeviceToHost, stream_),
        "sum_squares: reading the sum");
  synchronize("sum_squares");
  return *static_cast<const double*>(reduce_host_);
}

void CudaBackend::check_gradient(float* g, int64_t n, float clip, float limit,
                                 GradientCheck* out) {
  // *out is device memory: its flag cleared and set by kernels, its sum written by device_sum;
  // nothing is copied back, nothing waits.
  check(cudaMemsetAsync(&out->beyond, 0, 2 * sizeof(int32_t), stream_),
        "check_gradient: clearing the flag");
  if (std::isfinite(limit) && n > 0) {
    any_kernel<<<grid_for(n), kBlock, 0, stream_>>>(g, n, Beyond{limit}, &out->beyond);
    check_launch("check_gradient (any_kernel)");
  }
  clip_by_value(g, n, clip);
  device_sum(stream_, carve(reduce_dev_).partials, SquaresOf{g}, n, &out->sum_squares,
             SumInto::Overwrite, "check_gradient (partial_sums_kernel, finish_sum_kernel)");
}

void CudaBackend::sgd_update(ParamView p, const float* g, const SgdStep& s) {
  const int64_t n = p.numel();
  if (n <= 0) return;
  if (p.dtype == StorageDtype::F32) {
    sgd_f32_kernel<<<grid_for(n), kBlock, 0, stream_>>>(p.f32(), g, n, s.keep, s.step);
    check_launch("sgd_f32_kernel");
    return;
  }
  sgd_16_kernel<<<grid_for(n), kBlock, 0, stream_>>>(
      p.u16(), g, n, s.keep, s.step, element::Store16::of(p.dtype, s.rounding, p.id, p.first));
  check_launch("sgd_16_kernel");
}

void CudaBackend::adalomo_update(ParamView p, float* g, float* row, float* col,
                                 const AdaLomoStep& st) {
  const int64_t n = p.numel();
  if (n <= 0) return;
  const ReduceScratch sc = carve(reduce_dev_);
  if (st.grad_coef != 1.0f) {
    scale_kernel<<<grid_for(n), kBlock, 0, stream_>>>(g, n, st.grad_coef);
    check_launch("adalomo_update (scale_kernel)");
  }
  if (col != nullptr) {
    const int64_t rows = p.rows, cols = p.cols;
    const auto row_blocks = static_cast<unsigned>(std::clamp<int64_t>(rows, 1, kMaxPartials));
    adalomo_rows_kernel<<<row_blocks, kBlock, 0, stream_>>>(row, g, rows, cols, st.beta);
    check_launch("adalomo_rows_kernel");
    adalomo_cols_kernel<<<grid_for(cols), kBlock, 0, stream_>>>(col, g, rows, cols, st.beta);
    check_launch("adalomo_cols_kernel");
    device_sum(stream_, sc.partials, ValuesOf{row}, rows, sc.slots + kRowSumSlot,
               SumInto::Overwrite, "adalomo_update (Σr)");
    adalomo_matrix_u_kernel<<<row_blocks, kBlock, 0, stream_>>>(
        g, row, col, rows, cols, sc.slots + kRowSumSlot, sc.partials);
    check_launch("adalomo_matrix_u_kernel");
    finish_sum_kernel<<<1, kBlock, 0, stream_>>>(sc.partials, static_cast<int>(row_blocks),
                                                 sc.slots + kUSquaresSlot, SumInto::Overwrite);
    check_launch("adalomo_update (Σu²)");
  } else {
    const unsigned blocks = std::min<unsigned>(grid_for(n), kMaxPartials);
    adalomo_vector_u_kernel<<<blocks, kBlock, 0, stream_>>>(g, row, n, st.beta, sc.partials);
    check_launch("adalomo_vector_u_kernel");
    finish_sum_kernel<<<1, kBlock, 0, stream_>>>(sc.partials, static_cast<int>(blocks),
                                                 sc.slots + kUSquaresSlot, SumInto::Overwrite);
    check_launch("adalomo_update (Σu²)");
  }
  device_sum(stream_, sc.partials, ParamSquares{p.data, p.dtype}, n, sc.slots + kWSquaresSlot,
             SumInto::Overwrite, "adalomo_update (Σθ²)");
  const element::Store16 st16 = p.dtype == StorageDtype::F32
                                    ? element::Store16{}
                                    : element::Store16::of(p.dtype, st.rounding, p.id);
  adalomo_apply_kernel<<<grid_for(n), kBlock, 0, stream_>>>(
      p.data, p.dtype, g, n, sc.slots + kUSquaresSlot, sc.slots + kWSquaresSlot, st.lr,
      st.weight_decay, st16);
  check_launch("adalomo_apply_kernel");
}

void CudaBackend::adamw_update(ParamView p, const float* g, float* m, float* v,
                               const AdamWStep& s) {
  if (p.dtype != StorageDtype::F32) {
    throw Error("cuda adamw_update: parameter " + std::to_string(p.id) + " (" +
                std::to_string(p.rows) + " x " + std::to_string(p.cols) +
                ") is stored in 16 bits; AdamW updates fp32 parameters only");
  }
  const int64_t n = p.numel();
  if (n <= 0) return;
  const element::AdamWCoefs k =
      element::adamw_coefs(s.beta1, s.beta2, s.eps, s.lr, s.weight_decay, s.grad_coef,
                           s.bias_correction1, s.bias_correction2);
  adamw_kernel<<<grid_for(n), kBlock, 0, stream_>>>(p.f32(), g, m, v, n, k);
  check_launch("adamw_kernel");
}

}  // namespace lomo::cuda
