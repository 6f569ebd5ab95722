#pragma once
// edge_lazyfs (tests/tools/lazyfs.cpp) mounted for a test: a directory that loses what was not
// synced at a power cut, as a disk would. The tool needs /dev/fuse and the right to mount.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "tests/support/process.hpp"

namespace edge::test {

class LazyFs {
public:
    /// Mounts edge_lazyfs on mountpoint (created if missing) over backing; its output goes to log.
    /// With torn_seed, power cuts also tear unsynced writes page by page (edge_lazyfs --torn), a
    /// different way at each cut, the same way in every run.
    LazyFs(std::filesystem::path backing, std::filesystem::path mountpoint, std::filesystem::path log,
           std::optional<std::uint64_t> torn_seed = std::nullopt);
    /// Stops it cleanly (everything kept) and makes sure nothing stays mounted.
    ~LazyFs();
    LazyFs(const LazyFs&) = delete;
    LazyFs& operator=(const LazyFs&) = delete;

    /// Shell lines that cut the power from a script (a state command): an unsynced canary file
    /// is written first, which the power cut must lose.
    [[nodiscard]] std::string powerCutCommand() const;
    /// Cuts the power from the test itself (powerCutCommand()'s effect) and mounts again.
    void powerCut();
    /// After a power cut: waits until the tool restored the backing directory to what was synced
    /// and exited, checks that it did (the canary is gone, one more "power cut" line), and mounts
    /// again, as the next boot does.
    void remountAfterPowerCut();
    /// Unmounts cleanly: everything written is kept.
    void stop();
    [[nodiscard]] int powerCuts() const { return power_cuts_; }
    /// Pages torn in (written, not synced, and on the disk after the cut) over all power cuts.
    [[nodiscard]] std::size_t tornPages() const;
    [[nodiscard]] bool mounted() const;

private:
    void mount();
    [[nodiscard]] std::filesystem::path pidFile() const;

    std::filesystem::path backing_, mountpoint_, log_;
    std::optional<std::uint64_t> torn_seed_;
    Process proc_;
    int power_cuts_ = 0;
};

}  // namespace edge::test
