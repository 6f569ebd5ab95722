#include "firmware/rebooter.hpp"

#include "firmware/command.hpp"

namespace edge::firmware {

CommandRebooter::CommandRebooter(std::vector<std::string> argv, const Clock& clock,
                                 std::chrono::milliseconds timeout)
    : argv_(std::move(argv)), clock_(clock), timeout_(timeout) {}

Status CommandRebooter::reboot() {
    auto out = runChecked(clock_, argv_, {timeout_, 64 * 1024});
    if (!out) return fail(std::move(out.error()).wrap("request reboot"));
    return {};
}

}  // namespace edge::firmware
