#include "tests/support/text_model_dir.h"

#include "tests/support/fixtures.h"

namespace fs = std::filesystem;

namespace studio::test {

fs::path make_text_model_dir(const std::string& name) {
  const fs::path dir = temp_dir(name) / "llada";
  copy_tree_writable(fixtures_root() / "llada-tiny", dir);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    write_file(dir / f, read_file(source_dir() / "configs" / "llada-starter-tiny" / f));
  return dir;
}

}  // namespace studio::test
