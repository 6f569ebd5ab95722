// Fuzz target: config files and fleet documents (YAML from operators and device builders).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "controlplane/fleet.hpp"
#include "shared/core/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace edge;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto file = config::ConfigFile::parse(text, "fuzz.yaml", "/nonexistent");
    if (file) {
        (void)file->string("device_id");
        (void)file->duration("bundle_ttl", {});
        (void)file->strings("signing_keys");
        (void)file->integer("n", 0, 0, 10);
        (void)file->finish();
    }
    (void)controlplane::yamlToJson(text, "fuzz.yaml");
    return 0;
}
