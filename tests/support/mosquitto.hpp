#pragma once
// Mosquitto: a real broker for integration tests, on a free loopback port, with its config and
// logs (mosquitto.conf, mosquitto.log, mosquitto.out) in the given directory.
#include <filesystem>
#include <string>

#include "tests/support/process.hpp"

namespace edge::test {

class Mosquitto {
public:
    /// Starts the broker and waits until its port accepts TCP (10 s, else the test fails).
    explicit Mosquitto(std::filesystem::path dir);
    ~Mosquitto();
    Mosquitto(const Mosquitto&) = delete;
    Mosquitto& operator=(const Mosquitto&) = delete;

    int port() const { return port_; }
    std::string uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }

    /// SIGTERM and wait; the port is kept for start().
    void stop();
    /// Restarts on the same port (no-op if running); fails the test if it does not come up.
    void start();

private:
    void writeConfig() const;
    bool launch();

    std::filesystem::path dir_;
    int port_ = 0;
    Process process_;
};

}  // namespace edge::test
