// Where the tests find the shared fixtures and data, and tensor comparison helpers for parity
// tests.
#pragma once

#include <ATen/Tensor.h>

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace studio::test {

// $STUDIO_FIXTURES, else ../shared/fixtures beside the source tree. Fails the test if missing.
std::filesystem::path fixtures_root();
// $STUDIO_DATA, else ../shared/data beside the source tree.
std::filesystem::path data_root();
// A fresh empty folder under the build tree for one test's outputs (unique to this process).
std::filesystem::path temp_dir(const std::string& name);
// The source tree (for committed test data such as the fuzz corpus).
std::filesystem::path source_dir();
// Absolute path of the built `studio` executable.
std::filesystem::path studio_exe();

// Copies a folder (fixtures are read-only) into a writable copy: folders 0755, files 0644.
void copy_tree_writable(const std::filesystem::path& from, const std::filesystem::path& to);

// A whole file as bytes ("" if unreadable), and writing one (parent folders created).
std::string read_file(const std::filesystem::path& path);
void write_file(const std::filesystem::path& path, const std::string& content);

nlohmann::json read_json(const std::filesystem::path& path);

// max |a - b| over all elements (both moved to CPU fp64).
double max_abs_diff(const at::Tensor& a, const at::Tensor& b);
double max_abs(const at::Tensor& a);

}  // namespace studio::test
