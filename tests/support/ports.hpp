#pragma once
// Free loopback ports for servers started by tests (tests run in parallel: never a fixed port).

namespace edge::test {

/// Binds 127.0.0.1:0, reads the port the kernel chose, closes the socket and returns the port.
/// Another process may take it in between; servers started on it should be checked.
int freePort();

/// A listening TCP socket on 127.0.0.1 with a port the kernel chose (written to port); throws
/// on failure. For raw servers in tests.
int listenLoopback(int& port, int backlog = 8);

/// Whether something accepts TCP connections on 127.0.0.1:port (a server started by a test).
bool portAccepts(int port);

}  // namespace edge::test
