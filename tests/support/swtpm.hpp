#pragma once
// Swtpm: a real software TPM 2.0 for tests, on free loopback ports (server P, control P+1), with
// its state in a directory the caller owns (keep the directory to restart the same TPM: same
// seeds, hence the same EK). swtpm.log is written next to the state.
#include <filesystem>
#include <string>

#include "tests/support/process.hpp"

namespace edge::test {

class Swtpm {
public:
    /// Starts swtpm and waits until its port accepts TCP (10 s, else the test fails).
    explicit Swtpm(std::filesystem::path state_dir);
    ~Swtpm();
    Swtpm(const Swtpm&) = delete;
    Swtpm& operator=(const Swtpm&) = delete;

    int port() const { return port_; }
    /// "swtpm:host=127.0.0.1,port=P": for EsapiTpm::open and TPM2TOOLS_TCTI.
    std::string tcti() const;
    const std::filesystem::path& stateDir() const { return dir_; }

    /// SIGTERM and wait (swtpm saves its state).
    void stop();
    /// SIGKILL: the TPM vanishes mid-run.
    void kill();
    /// Restarts on the same state dir, on the same ports when they are still free (else on new
    /// ones: read tcti() again); fails the test if it does not come up.
    void start();

private:
    bool launch();

    std::filesystem::path dir_;
    int port_ = 0;
    Process process_;
};

/// Runs a tpm2-tools command against `tcti` (TPM2TOOLS_TCTI); returns its result.
CommandResult runTpm2Tool(const std::string& tcti, std::vector<std::string> argv);

}  // namespace edge::test
