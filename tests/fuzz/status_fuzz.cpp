// Fuzz target: device status payloads as the control plane reads them off the broker.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "controlplane/registry.hpp"
#include "tests/fakes/null_store.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace edge;
    static test::NullStore store;
    static controlplane::Registry registry(store);
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    (void)registry.applyStatus("edge-1", text);
    (void)registry.reportedFor("edge-1");
    return 0;
}
