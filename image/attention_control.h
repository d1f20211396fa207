// A hook into every attention layer of the UNet, for Prompt-to-Prompt editing (Hertz et al. 2022):
// while a controller is installed on the calling thread, attention is computed explicitly and the
// controller sees (and may replace) each layer's probabilities. Without one nothing changes.
#pragma once

#include <ATen/Tensor.h>

namespace studio::image {

class AttentionController {
 public:
  virtual ~AttentionController() = default;
  // probs [B, heads, Lq, Lk] after the softmax; cross: keys come from the text encoder (attn2).
  // Returns the probabilities the layer multiplies its values with (same shape).
  virtual at::Tensor on_attention(const at::Tensor& probs, bool cross) = 0;
};

// Installs `controller` for the calling thread for this object's lifetime (nesting restores).
class ScopedAttentionController {
 public:
  explicit ScopedAttentionController(AttentionController* controller);
  ~ScopedAttentionController();
  ScopedAttentionController(const ScopedAttentionController&) = delete;
  ScopedAttentionController& operator=(const ScopedAttentionController&) = delete;

 private:
  AttentionController* previous_;
};

// The controller installed on this thread, or nullptr.
AttentionController* current_attention_controller();

}  // namespace studio::image
