// A LLaDA model folder for tests: the llada-tiny fixture's config and weights with the starter
// tokenizer (configs/llada-starter-tiny: same vocabulary size and mask / EOS ids), copied into a
// writable temporary folder so tests can alter it.
#pragma once

#include <filesystem>
#include <string>

namespace studio::test {

std::filesystem::path make_text_model_dir(const std::string& name);

}  // namespace studio::test
