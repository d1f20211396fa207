#include "text/llada_sampler.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <string>

#include "core/error.h"
#include "core/limits.h"

namespace studio {
namespace {

using Clock = std::chrono::steady_clock;

const char* const kHint = "see the LLaDASamplerOptions documentation in text/llada_sampler.h";

[[noreturn]] void usage(const std::string& what) { throw UsageError(what, "", kHint); }

// Checks of the token rows (prompts or canvases) and of the options both entry points share.
void validate_rows_and_options(const LLaDAConfig& c, const std::vector<std::vector<int64_t>>& rows,
                               const char* what, const LLaDASamplerOptions& o) {
  if (rows.empty()) usage(std::string("no ") + what + " given");
  size_t longest = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].empty()) usage(std::string(what) + " " + std::to_string(i) + " is empty");
    for (int64_t id : rows[i])
      if (id < 0 || id >= c.embedding_size)
        usage(std::string(what) + " " + std::to_string(i) + " holds token id " +
              std::to_string(id) + ", outside the embedding table of " +
              std::to_string(c.embedding_size));
    longest = std::max(longest, rows[i].size());
  }
  for (const auto& r : rows)
    if (r.size() != longest && c.pad_token_id == c.mask_token_id)
      usage(std::string(what) + "s of different lengths need padding, but pad_token_id equals " +
            "mask_token_id (" + std::to_string(c.mask_token_id) + ")");
  if (!(o.temperature >= 0) || !std::isfinite(o.temperature))
    usage("temperature must be >= 0, got " + std::to_string(o.temperature));
  if (!(o.cfg_scale >= 0) || !std::isfinite(o.cfg_scale))
    usage("cfg_scale must be >= 0, got " + std::to_string(o.cfg_scale));
  if (o.tokens_per_step < 0)
    usage("tokens_per_step must be >= 0, got " + std::to_string(o.tokens_per_step));
  if (o.threshold && !(*o.threshold > 0 && *o.threshold <= 1))
    usage("threshold must be in (0, 1], got " + std::to_string(*o.threshold));
  if (o.threshold && o.tokens_per_step > 0)
    usage("threshold and tokens_per_step are exclusive: set one");
  if (o.sampler == LLaDASampler::kLLaDA) {
    if (o.threshold || o.tokens_per_step > 0 || o.cache != LLaDACacheMode::kNone)
      usage("threshold, tokens_per_step and KV caches are Fast-dLLM options (sampler kFastDLLM)");
    if (o.confidence_eos_eot_inf && (o.eot_token_id < 0 || o.eot_token_id >= c.embedding_size))
      usage(
          "confidence_eos_eot_inf needs eot_token_id (<|eot_id|>) inside the embedding table, "
          "got " +
          std::to_string(o.eot_token_id));
  } else if (o.cfg_scale > 0 || o.logits_eos_inf || o.confidence_eos_eot_inf) {
    usage(
        "cfg_scale, logits_eos_inf and confidence_eos_eot_inf are options of the LLaDA sampler "
        "(sampler kLLaDA)");
  }
}

void validate(const LLaDAConfig& c, const std::vector<std::vector<int64_t>>& prompts,
              const LLaDASamplerOptions& o) {
  validate_rows_and_options(c, prompts, "prompt", o);
  if (o.gen_length <= 0) usage("gen_length must be positive, got " + std::to_string(o.gen_length));
  check_limit<UsageError>("gen_tokens", o.gen_length, "gen_length asks for", "text generation",
                          "generate less");
  if (o.block_length <= 0 || o.gen_length % o.block_length != 0)
    usage("gen_length (" + std::to_string(o.gen_length) + ") must be a multiple of block_length (" +
          std::to_string(o.block_length) + ")");
  const int64_t num_blocks = o.gen_length / o.block_length;
  if (o.steps <= 0 || o.steps % num_blocks != 0)
    usage("steps (" + std::to_string(o.steps) + ") must be a positive multiple of the number of " +
          "blocks (gen_length / block_length = " + std::to_string(num_blocks) + ")");
  size_t longest = 0;
  for (const auto& p : prompts) longest = std::max(longest, p.size());
  if (int64_t(longest) + o.gen_length > c.max_sequence_length)
    usage("prompt (" + std::to_string(longest) + " tokens) + gen_length (" +
          std::to_string(o.gen_length) + ") exceeds the model's max_sequence_length (" +
          std::to_string(c.max_sequence_length) + ")");
}

// One sampling run: the canvas, the mask, and the model calls with CFG folded in.
class Run {
 public:
  // rows: full canvases (prompt, then mask ids where text is to be generated), left-padded to the
  // longest. gen_from: first column of the generated region (for TTFT; 0: anywhere).
  Run(LLaDAModelLM& model, const std::vector<std::vector<int64_t>>& rows, int64_t gen_from,
      const LLaDASamplerOptions& o)
      : model_(model), c_(model->config()), o_(o), start_(Clock::now()), gen_from_(gen_from) {
    const auto param = model->parameters().front();
    device_ = param.device();
    batch_ = int64_t(rows.size());
    for (const auto& r : rows) total_ = std::max(total_, int64_t(r.size()));
    at::Tensor x = at::full({batch_, total_}, c_.pad_token_id, at::kLong);
    at::Tensor mask = at::ones({batch_, total_}, at::kLong);
    bool padded = false;
    for (int64_t b = 0; b < batch_; ++b) {
      const auto& r = rows[size_t(b)];
      const int64_t pad = total_ - int64_t(r.size());
      if (pad > 0) {
        padded = true;
        mask[b].narrow(0, 0, pad).zero_();
      }
      x[b].narrow(0, pad, int64_t(r.size()))
          .copy_(at::tensor(std::vector<int64_t>(r.begin(), r.end()), at::kLong));
    }
    x_ = x.to(device_);
    if (padded) {
      attention_mask_ = mask.to(device_);
      if (o.cfg_scale > 0) attention_mask_ = at::cat({attention_mask_, attention_mask_}, 0);
    }
    // As the reference: the "prompt" of the unconditional row is every position not masked at
    // the start (padding included).
    prompt_index_ = x_.ne(c_.mask_token_id);
    if (o.temperature > 0 || o.remasking == LLaDARemasking::kRandom)
      gen_ = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  }

  int64_t batch() const { return batch_; }
  int64_t total() const { return total_; }
  at::Tensor& x() { return x_; }
  const at::Device& device() const { return device_; }

  // Logits [batch, len, V] of x[:, start:start+len] (fp32 or wider as the model gives them).
  // cache: in (past) / out (when return_cache).
  at::Tensor forward(int64_t start, int64_t len, const LLaDAKVCache* past, int64_t replace_start,
                     bool return_cache, LLaDAKVCache* cache_out) {
    at::Tensor ids = x_.narrow(1, start, len);
    const bool cfg = o_.cfg_scale > 0;
    if (cfg) {
      at::Tensor un = x_.masked_fill(prompt_index_, c_.mask_token_id);
      ids = at::cat({ids, un.narrow(1, start, len)}, 0);
    }
    LLaDAForwardOptions fo;
    if (attention_mask_.defined()) fo.attention_mask = attention_mask_;
    fo.past = past;
    fo.replace_start = replace_start;
    fo.return_cache = return_cache;
    if (o_.on_forward) {
      const at::Tensor cpu_ids = ids.cpu();
      LLaDAForwardCall call;
      call.input_ids = &cpu_ids;
      call.past_length = past ? past->length() : 0;
      call.replace_start = replace_start;
      call.return_cache = return_cache;
      o_.on_forward(call);
    }
    LLaDAOutput out = model_->forward_with_cache(ids, fo);
    ++nfe_;
    if (cache_out) *cache_out = std::move(out.cache);
    at::Tensor logits = out.logits;
    if (logits.scalar_type() != at::kFloat && logits.scalar_type() != at::kDouble)
      logits = logits.to(at::kFloat);
    if (cfg) {
      const at::Tensor cond = logits.narrow(0, 0, batch_);
      const at::Tensor un = logits.narrow(0, batch_, batch_);
      logits = un + (o_.cfg_scale + 1) * (cond - un);
    }
    return logits;
  }

  // Picks and commits tokens of x[:, start:start+len] from `logits` of that slice. `candidates`
  // [batch, len] bool: positions that may be committed. k[b]: how many (threshold: all
  // candidates, then filtered). Returns the number committed and appends the commits to
  // per-row counts.
  int64_t commit(const at::Tensor& logits_in, int64_t start, int64_t len,
                 const at::Tensor& candidates, const std::vector<int64_t>& k) {
    at::Tensor logits = logits_in;
    if (o_.logits_eos_inf) {
      logits = logits.clone();
      logits.select(-1, c_.eos_token_id).fill_(-std::numeric_limits<double>::infinity());
    }
    at::Tensor x0;
    if (o_.temperature > 0) {
      // add_gumbel_noise: exp(logits) / (-log(u))^temperature in fp64, u ~ U[0, 1).
      const at::Tensor l64 = logits.to(at::kDouble);
      const at::Tensor u =
          at::rand(l64.sizes(), gen_, at::TensorOptions().dtype(at::kDouble)).to(device_);
      x0 = (l64.exp() / at::pow(-at::log(u), o_.temperature)).argmax(-1);
    } else {
      x0 = logits.argmax(-1);
    }
    at::Tensor conf;
    if (o_.remasking == LLaDARemasking::kLowConfidence) {
      at::Tensor l = logits;
      if (o_.confidence_eos_eot_inf) {
        // generate.py: `logits_with_noise[..., EOS] = logits[..., EoT] = -inf` after the argmax.
        // Only the EoT logit reaches the softmax, and the EOS one too at temperature 0, where
        // add_gumbel_noise returns the logits tensor itself.
        l = l.clone();
        const double inf = std::numeric_limits<double>::infinity();
        l.select(-1, o_.eot_token_id).fill_(-inf);
        if (o_.temperature == 0) l.select(-1, c_.eos_token_id).fill_(-inf);
      }
      const auto dtype = o_.sampler == LLaDASampler::kFastDLLM ? at::kDouble : l.scalar_type();
      const at::Tensor p = at::softmax(l.to(dtype), -1);
      conf = p.gather(-1, x0.unsqueeze(-1)).squeeze(-1);
    } else {
      conf = at::rand({x0.size(0), x0.size(1)}, gen_, at::TensorOptions().dtype(at::kFloat))
                 .to(device_);
    }
    at::Tensor slice = x_.narrow(1, start, len);
    x0 = at::where(candidates, x0, slice);
    conf = at::where(candidates, conf,
                     at::full({}, -std::numeric_limits<double>::infinity(), conf.options()));
    const at::Tensor counts = candidates.sum(1).cpu();
    at::Tensor transfer = at::zeros_like(candidates);
    int64_t committed = 0;
    for (int64_t b = 0; b < batch_; ++b) {
      const int64_t available = counts[b].item<int64_t>();
      const int64_t kb = o_.threshold ? available : std::min(k[size_t(b)], available);
      if (kb <= 0) continue;
      const at::Tensor row_conf = conf[b];
      at::Tensor index = std::get<1>(at::topk(row_conf, kb));
      if (o_.threshold && kb > 1) {
        // The most confident always; the others when conf >= threshold.
        const at::Tensor keep = row_conf.index_select(0, index).ge(*o_.threshold);
        keep[0] = true;
        index = index.masked_select(keep);
      }
      transfer[b].index_fill_(0, index, true);
      committed += index.size(0);
    }
    slice.copy_(at::where(transfer, x0, slice));
    if (committed > 0 && !first_token_) {
      // A commit inside the generated region (positions >= gen_from_).
      const int64_t gen_from = std::max<int64_t>(0, gen_from_ - start);
      if (gen_from < len && transfer.narrow(1, gen_from, len - gen_from).any().item<bool>())
        first_token_ = Clock::now();
    }
    return committed;
  }

  // Masked positions of x[:, start:end) ([batch, end - start] bool).
  at::Tensor masked(int64_t start, int64_t end) const {
    return x_.narrow(1, start, end - start).eq(c_.mask_token_id);
  }

  int64_t nfe() const { return nfe_; }
  Clock::time_point start_time() const { return start_; }
  const std::optional<Clock::time_point>& first_token() const { return first_token_; }

 private:
  LLaDAModelLM& model_;
  const LLaDAConfig& c_;
  const LLaDASamplerOptions& o_;
  Clock::time_point start_;
  std::optional<Clock::time_point> first_token_;
  at::Device device_ = at::kCPU;
  int64_t gen_from_ = 0;
  int64_t batch_ = 0, total_ = 0, nfe_ = 0;
  at::Tensor x_, attention_mask_, prompt_index_;
  at::Generator gen_;
};

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

std::vector<int64_t> llada_transfer_schedule(int64_t masked, int64_t steps) {
  if (steps <= 0)
    throw UsageError("transfer schedule needs steps > 0, got " + std::to_string(steps));
  std::vector<int64_t> out(size_t(steps), masked / steps);
  for (int64_t i = 0; i < masked % steps; ++i) ++out[size_t(i)];
  return out;
}

int64_t LLaDASamplerResult::generated_tokens() const {
  int64_t n = 0;
  for (const auto& g : generated_ids) n += int64_t(g.size());
  return n;
}

double LLaDASamplerResult::tpot_seconds() const {
  const int64_t n = generated_tokens();
  return n < 2 ? 0.0 : (total_seconds - ttft_seconds) / double(n - 1);
}

LLaDASamplerResult llada_generate(LLaDAModelLM& model,
                                  const std::vector<std::vector<int64_t>>& prompts,
                                  const LLaDASamplerOptions& o) {
  const LLaDAConfig& c = model->config();
  validate(c, prompts, o);
  torch::NoGradGuard no_grad;
  int64_t p = 0;
  for (const auto& prompt : prompts) p = std::max(p, int64_t(prompt.size()));
  std::vector<std::vector<int64_t>> rows;
  for (const auto& prompt : prompts) {
    rows.push_back(prompt);
    rows.back().resize(prompt.size() + size_t(o.gen_length), c.mask_token_id);
  }
  Run run(model, rows, p, o);
  const int64_t batch = run.batch(), total = run.total();
  const int64_t num_blocks = o.gen_length / o.block_length;
  const int64_t steps_per_block = o.steps / num_blocks;
  const bool fast = o.sampler == LLaDASampler::kFastDLLM;

  LLaDASamplerResult result;
  result.prompt_length = p;
  bool cancelled = false;
  int64_t block = 0;
  // After a step: bookkeeping and the callback; false when cancelled.
  auto after_step = [&](int64_t committed) {
    result.tokens_per_step.push_back(committed);
    ++result.steps;
    if (!o.on_step) return true;
    const at::Tensor canvas = run.x().cpu();
    LLaDAStepInfo info;
    info.step = result.steps;
    info.block = block;
    info.num_blocks = num_blocks;
    info.committed = committed;
    info.canvas = &canvas;
    if (o.on_step(info)) return true;
    cancelled = true;
    return false;
  };

  for (block = 0; block < num_blocks && !cancelled; ++block) {
    const int64_t bs = p + block * o.block_length, be = bs + o.block_length;
    // Per-row schedule from the masks of the block at its start.
    const at::Tensor block_masked = run.masked(bs, be).sum(1).cpu();
    std::vector<std::vector<int64_t>> schedule;
    for (int64_t b = 0; b < batch; ++b)
      schedule.push_back(llada_transfer_schedule(block_masked[b].item<int64_t>(), steps_per_block));
    auto k_at = [&](int64_t i) {
      std::vector<int64_t> k(size_t(batch), 0);
      for (int64_t b = 0; b < batch; ++b) {
        if (o.tokens_per_step > 0)
          k[size_t(b)] = o.tokens_per_step;
        else if (i < steps_per_block)
          k[size_t(b)] = schedule[size_t(b)][size_t(i)];
      }
      return k;
    };
    auto block_done = [&] { return !run.masked(bs, be).any().item<bool>(); };
    // Candidates of a full-canvas call: masked positions before the end of the block.
    auto full_candidates = [&] {
      at::Tensor m = run.masked(0, total);
      m.narrow(1, be, total - be).fill_(false);
      return m;
    };

    if (!fast) {
      for (int64_t i = 0; i < steps_per_block; ++i) {
        const at::Tensor logits = run.forward(0, total, nullptr, -1, false, nullptr);
        if (!after_step(run.commit(logits, 0, total, full_candidates(), k_at(i)))) break;
      }
      continue;
    }
    if (o.cache == LLaDACacheMode::kNone) {
      // Guard against a schedule that never fills the block (cannot happen with valid options).
      const int64_t max_calls = o.block_length + steps_per_block + 1;
      for (int64_t i = 0; !block_done(); ++i) {
        if (i >= max_calls) throw std::logic_error("LLaDA sampler: block does not fill");
        const at::Tensor logits = run.forward(0, total, nullptr, -1, false, nullptr);
        if (!after_step(run.commit(logits, 0, total, full_candidates(), k_at(i)))) break;
      }
      continue;
    }
    // Prefix / dual cache: a full call that returns K/V, then cached calls until the block is
    // filled (at least one, as the reference).
    LLaDAKVCache cache;
    {
      const at::Tensor logits = run.forward(0, total, nullptr, -1, true, &cache);
      if (!after_step(run.commit(logits, 0, total, full_candidates(), k_at(0)))) break;
    }
    const bool dual = o.cache == LLaDACacheMode::kDual;
    if (!dual) cache = cache.slice(0, bs);
    const int64_t fed = dual ? o.block_length : total - bs;
    const int64_t max_calls = o.block_length + steps_per_block + 1;
    for (int64_t i = 1;; ++i) {
      if (i >= max_calls) throw std::logic_error("LLaDA sampler: block does not fill");
      const at::Tensor logits = run.forward(bs, fed, &cache, dual ? bs : -1, false, nullptr);
      at::Tensor candidates = run.masked(bs, bs + fed);
      if (!dual) candidates.narrow(1, o.block_length, fed - o.block_length).fill_(false);
      if (!after_step(run.commit(logits, bs, fed, candidates, k_at(i)))) break;
      if (block_done()) break;
    }
  }

  const auto end = Clock::now();
  result.cancelled = cancelled;
  result.nfe = run.nfe();
  result.output_ids = run.x().cpu();
  for (int64_t b = 0; b < batch; ++b) {
    const at::Tensor row = result.output_ids[b].narrow(0, p, o.gen_length).contiguous();
    const int64_t* data = row.data_ptr<int64_t>();
    result.generated_ids.emplace_back(data, data + o.gen_length);
  }
  result.total_seconds = seconds(end - run.start_time());
  result.ttft_seconds =
      run.first_token() ? seconds(*run.first_token() - run.start_time()) : result.total_seconds;
  return result;
}

LLaDASamplerResult llada_infill(LLaDAModelLM& model,
                                const std::vector<std::vector<int64_t>>& canvases,
                                const LLaDASamplerOptions& o) {
  const LLaDAConfig& c = model->config();
  validate_rows_and_options(c, canvases, "canvas", o);
  if (o.steps <= 0) usage("steps must be positive, got " + std::to_string(o.steps));
  if (o.cache != LLaDACacheMode::kNone)
    usage("KV caches need one contiguous generated block; infilling runs without a cache");
  size_t longest = 0;
  for (const auto& r : canvases) longest = std::max(longest, r.size());
  if (int64_t(longest) > c.max_sequence_length)
    usage("canvas of " + std::to_string(longest) + " tokens exceeds the model's " +
          "max_sequence_length (" + std::to_string(c.max_sequence_length) + ")");
  torch::NoGradGuard no_grad;
  Run run(model, canvases, 0, o);
  const int64_t batch = run.batch(), total = run.total();
  const bool fast = o.sampler == LLaDASampler::kFastDLLM;

  LLaDASamplerResult result;
  const at::Tensor initially_masked = run.masked(0, total).cpu();
  const at::Tensor masked_counts = initially_masked.sum(1);
  int64_t most = 0;
  for (int64_t b = 0; b < batch; ++b) most = std::max(most, masked_counts[b].item<int64_t>());
  const int64_t steps = std::min(o.steps, most);
  std::vector<std::vector<int64_t>> schedule;
  for (int64_t b = 0; b < batch && steps > 0; ++b)
    schedule.push_back(llada_transfer_schedule(masked_counts[b].item<int64_t>(), steps));
  auto k_at = [&](int64_t i) {
    std::vector<int64_t> k(size_t(batch), 0);
    for (int64_t b = 0; b < batch; ++b) {
      if (o.tokens_per_step > 0)
        k[size_t(b)] = o.tokens_per_step;
      else if (i < steps)
        k[size_t(b)] = schedule[size_t(b)][size_t(i)];
    }
    return k;
  };
  bool cancelled = false;
  const int64_t max_calls = fast ? most + steps + 1 : steps;
  for (int64_t i = 0; i < max_calls; ++i) {
    if (fast && !run.masked(0, total).any().item<bool>()) break;
    const at::Tensor logits = run.forward(0, total, nullptr, -1, false, nullptr);
    const int64_t committed = run.commit(logits, 0, total, run.masked(0, total), k_at(i));
    result.tokens_per_step.push_back(committed);
    ++result.steps;
    if (o.on_step) {
      const at::Tensor canvas = run.x().cpu();
      LLaDAStepInfo info;
      info.step = result.steps;
      info.block = 0;
      info.num_blocks = 1;
      info.committed = committed;
      info.canvas = &canvas;
      if (!o.on_step(info)) {
        cancelled = true;
        break;
      }
    }
  }
  if (fast && !cancelled && run.masked(0, total).any().item<bool>())
    throw std::logic_error("LLaDA infill: masks left after the schedule");

  const auto end = Clock::now();
  result.cancelled = cancelled;
  result.nfe = run.nfe();
  result.output_ids = run.x().cpu();
  for (int64_t b = 0; b < batch; ++b) {
    const at::Tensor ids = result.output_ids[b].masked_select(initially_masked[b]).contiguous();
    const int64_t* data = ids.data_ptr<int64_t>();
    result.generated_ids.emplace_back(data, data + ids.numel());
  }
  result.total_seconds = seconds(end - run.start_time());
  result.ttft_seconds =
      run.first_token() ? seconds(*run.first_token() - run.start_time()) : result.total_seconds;
  return result;
}

}  // namespace studio
