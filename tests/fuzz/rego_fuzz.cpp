// Fuzz target: Rego from the outside world (fleet repositories, bundles). Parses and compiles
// the input as a module; when it compiles, evaluates every package with a step budget, so a
// hostile policy must end in a result or an error, never a crash or a hang.
#include <cstddef>
#include <cstdint>
#include <string>

#include "shared/policy/engine.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace edge::policy;
    const std::string text(reinterpret_cast<const char*>(data), size);
    auto policy = Policy::compile({{"fuzz.rego", text}});
    if (!policy) return 0;
    EvalOptions options;
    options.max_steps = 20000;
    options.timeout = std::chrono::milliseconds(200);
    options.input = *parseJson(R"({"a": [1, 2, {"b": "c"}], "s": "text", "n": 3.5})");
    for (const auto& pkg : (*policy)->packages()) {
        auto query = (*policy)->prepare(pkg);
        if (query) (void)query->evalValue(options);
    }
    return 0;
}
