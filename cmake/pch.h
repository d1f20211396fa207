// Precompiled header: the heavy third-party includes most studio TUs use.
#pragma once
#include <torch/torch.h>
#include <nlohmann/json.hpp>
#include <filesystem>
#include <string>
#include <vector>
