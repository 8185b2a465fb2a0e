// Where the weights of a layer live while the model uses them. The model asks for a layer's
// weights before it reads them (forward, recompute, backward) and gives them back after; the
// default keeps everything resident and does nothing. Parameter sharding (ZeRO-3 style) will
// implement it: acquire gathers the layer's shards, release frees the gathered copy.
// Layers are the decoder blocks 0 … n_layer − 1, and kOutsideBlocks (model/params.h) for the
// embedding, the final norm and the LM head.
#pragma once

#include <cstdint>

namespace lomo {

class Residency {
 public:
  virtual ~Residency() = default;
  virtual void acquire(int64_t layer) { (void)layer; }
  virtual void release(int64_t layer) { (void)layer; }
};

}  // namespace lomo
