// edge_lazyfs: a FUSE file system for power-cut tests.
//
// Every operation goes to a backing directory at once, so the programs on the mount see their
// own writes (as they would through a page cache). Beside that, it keeps what a disk would hold
// after a power cut, with the ordering of ext4 mounted with noauto_da_alloc (the default
// auto_da_alloc also flushes a rewrite or rename-over before the next commit: this is stricter):
//   - a file's content as of its last fsync or fdatasync (empty, for a file whose name is on the
//     disk but whose content was never synced);
//   - the names (creations, renames, deletions, directories) and file sizes as of the last
//     journal commit: an fsync, an fsyncdir, or an fdatasync that changed the file's size (ext4
//     commits every earlier change of names with it; an fdatasync of an overwrite commits none).
//     A file cut (truncate, O_TRUNC) before that commit comes back cut, whatever was written
//     after the cut and not synced: the zero-length file of a rewrite that was never synced.
// SIGUSR1 is the power cut: the file system stops serving, is unmounted, and the backing
// directory is rewritten to that durable state, as the disk would come back. SIGTERM, SIGINT or
// SIGHUP unmount cleanly (everything is kept, as an orderly shutdown flushes).
// With --torn SEED, writes are also torn: the kernel may write any dirty page back before the
// cut, so of the 4 KiB pages a kept file's unsynced writes changed within its durable size, each
// reaches the disk or not, at random (from SEED: the same seed tears the same way), below a cut
// not yet committed (ext4 writes what follows such a cut into new blocks). Pages are whole (a
// disk's sector writes are atomic; a page torn between sectors is not modelled).
// Not modelled: ext4's own periodic journal commits and writeback, which can put part of a
// never-synced or grown file on the disk, or commit names without an fsync (here such a file
// comes back empty, and nothing beyond the durable size arrives); hard links (they come back as
// separate copies).
//
// Usage: edge_lazyfs BACKING MOUNTPOINT [--torn SEED]
// Runs in the foreground (a single-threaded FUSE loop, and a thread that waits for the signals);
// prints "ready" once mounted and, after a power cut,
// "power cut: N names kept, P torn pages" once the backing directory holds the durable state
// (exit 0; 1 when the durable state could not be written back whole).
// Test tool only (tests/integration/ota_test.cpp); needs /dev/fuse and the right to mount.
#define FUSE_USE_VERSION 31
#include <fuse.h>
#include <fuse_lowlevel.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>

namespace {

std::string g_backing;
bool g_power_cut = false;
bool g_torn = false;
std::uint64_t g_seed = 0;

/// xorshift64*: the torn pages' coin, reproducible from the seed.
bool coin() {
    g_seed ^= g_seed >> 12;
    g_seed ^= g_seed << 25;
    g_seed ^= g_seed >> 27;
    return ((g_seed * 0x2545F4914F6CDD1DULL) >> 63) != 0;
}

using Content = std::shared_ptr<const std::string>;

/// A name as it would survive a power cut.
struct Durable {
    mode_t mode = 0;
    std::string link;  // symlink target
    // Regular file: its inode (and generation: inode numbers are reused), and its content as of
    // its last sync when the name was committed (null: never synced). A later sync of the same
    // file supersedes that content (see restoreDurable).
    ino_t ino = 0;
    std::uint64_t gen = 0;
    Content data;
};

/// Content as of the last sync, per live inode of the backing directory.
std::map<ino_t, Content> g_synced;
/// The shortest size a file was cut to (truncate, O_TRUNC) since its last sync: the next journal
/// commit makes the cut durable (the size is metadata), while later writes that extend the file
/// again reach the disk only with the file's own sync.
std::map<ino_t, std::size_t> g_cut;
/// Bumped when a new file takes an inode number.
std::map<ino_t, std::uint64_t> g_gen;

std::uint64_t generation(ino_t ino) {
    const auto it = g_gen.find(ino);
    return it == g_gen.end() ? 0 : it->second;
}
/// The durable names, by path below the mount ("/a/b"); sorted, so parents come first.
std::map<std::string, Durable> g_names;

std::string real(const char* path) { return g_backing + path; }

int err(int rc) { return rc < 0 ? -errno : rc; }

bool readAll(int fd, std::string& out) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return false;
    out.resize(static_cast<std::size_t>(st.st_size));
    std::size_t done = 0;
    while (done < out.size()) {
        const ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += static_cast<std::size_t>(n);
    }
    out.resize(done);
    return true;
}

/// Records fd's current content as synced; true when its size differs from the last sync's.
bool syncData(int fd) {
    // The caller's descriptor may be write-only: read through a fresh one.
    const std::string self = "/proc/self/fd/" + std::to_string(fd);
    const int rd = ::open(self.c_str(), O_RDONLY | O_CLOEXEC);
    if (rd < 0) return true;
    struct stat st {};
    bool resized = true;
    auto content = std::make_shared<std::string>();
    if (::fstat(rd, &st) == 0 && readAll(rd, *content)) {
        auto& slot = g_synced[st.st_ino];
        resized = !slot || slot->size() != content->size();
        slot = std::move(content);
        g_cut.erase(st.st_ino);
    }
    ::close(rd);
    return resized;
}

void walk(const std::string& rel, std::map<std::string, Durable>& out) {
    DIR* dir = ::opendir((g_backing + rel).c_str());
    if (dir == nullptr) return;
    while (const dirent* e = ::readdir(dir)) {
        const std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        const std::string path = rel + "/" + name;
        struct stat st {};
        if (::lstat((g_backing + path).c_str(), &st) != 0) continue;
        Durable d;
        d.mode = st.st_mode;
        if (S_ISLNK(st.st_mode)) {
            char buf[4096];
            const ssize_t n = ::readlink((g_backing + path).c_str(), buf, sizeof buf);
            if (n > 0) d.link.assign(buf, static_cast<std::size_t>(n));
        } else if (S_ISREG(st.st_mode)) {
            auto& synced = g_synced[st.st_ino];
            // A cut since the last sync becomes durable with this commit.
            if (const auto cut = g_cut.find(st.st_ino); cut != g_cut.end()) {
                if (synced && cut->second < synced->size()) {
                    synced = std::make_shared<std::string>(synced->substr(0, cut->second));
                }
                g_cut.erase(cut);
            }
            d.data = synced;
            d.ino = st.st_ino;
            d.gen = generation(st.st_ino);
        }
        out[path] = d;
        if (S_ISDIR(st.st_mode)) walk(path, out);
    }
    ::closedir(dir);
}

/// Every name change so far becomes durable (a journal commit).
void syncNames() {
    std::map<std::string, Durable> names;
    walk("", names);
    g_names.swap(names);
}

/// A file just created: nothing of it is on the disk yet (its inode number may be a reused one).
void created(const char* path) {
    struct stat st {};
    if (::lstat(real(path).c_str(), &st) == 0) {
        g_synced.erase(st.st_ino);
        g_cut.erase(st.st_ino);
        ++g_gen[st.st_ino];
    }
}

/// fd's file was cut to size.
void cut(int fd, std::size_t size) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return;
    const auto it = g_cut.find(st.st_ino);
    g_cut[st.st_ino] = it == g_cut.end() ? size : std::min(it->second, size);
}

/// The live content of the regular files below the backing directory, by inode (torn mode: what
/// the page cache held at the cut).
void readLive(const std::string& rel, std::map<ino_t, std::string>& out) {
    DIR* dir = ::opendir((g_backing + rel).c_str());
    if (dir == nullptr) return;
    while (const dirent* e = ::readdir(dir)) {
        const std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        const std::string path = g_backing + rel + "/" + name;
        struct stat st {};
        if (::lstat(path.c_str(), &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            readLive(rel + "/" + name, out);
        } else if (S_ISREG(st.st_mode) && !out.contains(st.st_ino)) {
            const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
            if (fd < 0) continue;
            readAll(fd, out[st.st_ino]);
            ::close(fd);
        }
    }
    ::closedir(dir);
}

/// Durable content with the pages the cache had changed within its size torn in at random, below
/// limit: a cut not yet committed (ext4 writes what follows it into new blocks, never into the
/// old ones).
Content tear(const Content& durable, const std::string& live, std::size_t limit, std::size_t& torn) {
    constexpr std::size_t kPage = 4096;
    if (!durable) return durable;
    std::string out = *durable;
    for (std::size_t at = 0; at < std::min(out.size(), limit); at += kPage) {
        const std::size_t end = std::min({at + kPage, out.size(), live.size(), limit});
        if (end <= at || out.compare(at, end - at, live, at, end - at) == 0) continue;
        if (!coin()) continue;
        out.replace(at, end - at, live, at, end - at);
        ++torn;
    }
    return std::make_shared<const std::string>(std::move(out));
}

/// The power cut: the backing directory becomes what the disk holds. Counts the names kept, the
/// pages torn in and the steps that failed.
void restoreDurable(std::size_t& kept, std::size_t& torn, std::size_t& failed) {
    std::map<ino_t, std::string> live;
    if (g_torn) readLive("", live);
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(g_backing, ec)) {
        std::filesystem::remove_all(entry.path(), ec);
        if (ec) ++failed;
    }
    if (ec) ++failed;
    for (const auto& [path, d] : g_names) {
        const std::string target = g_backing + path;
        bool ok = true;
        if (S_ISDIR(d.mode)) {
            ok = ::mkdir(target.c_str(), d.mode & 07777) == 0;
        } else if (S_ISLNK(d.mode)) {
            ok = ::symlink(d.link.c_str(), target.c_str()) == 0;
        } else if (S_ISREG(d.mode)) {
            // The same file's latest sync, if it came after the commit (fdatasync of an
            // overwrite commits no names but makes the content durable).
            Content data = d.data;
            if (generation(d.ino) == d.gen) {
                if (const auto it = g_synced.find(d.ino); it != g_synced.end() && it->second) data = it->second;
                if (const auto it = live.find(d.ino); it != live.end()) {
                    const auto cut = g_cut.find(d.ino);
                    data = tear(data, it->second, cut == g_cut.end() ? SIZE_MAX : cut->second, torn);
                }
            }
            const int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, d.mode & 07777);
            ok = fd >= 0;
            if (ok && data) {
                std::size_t done = 0;
                while (ok && done < data->size()) {
                    const ssize_t n = ::write(fd, data->data() + done, data->size() - done);
                    ok = n > 0;
                    if (ok) done += static_cast<std::size_t>(n);
                }
            }
            if (fd >= 0) ::close(fd);
        } else {
            continue;  // sockets and fifos do not outlive a boot
        }
        if (ok) {
            ++kept;
        } else {
            std::fprintf(stderr, "edge_lazyfs: cannot restore %s: %s\n", path.c_str(), std::strerror(errno));
            ++failed;
        }
    }
}

void* init(fuse_conn_info*, fuse_config* cfg) {
    cfg->use_ino = 1;
    cfg->hard_remove = 1;  // no .fuse_hidden files for removed open files
    cfg->entry_timeout = 0;
    cfg->attr_timeout = 0;
    cfg->negative_timeout = 0;
    return nullptr;
}

int getattr(const char* path, struct stat* st, fuse_file_info* fi) {
    if (fi != nullptr) return err(::fstat(static_cast<int>(fi->fh), st));
    return err(::lstat(real(path).c_str(), st));
}

int readlinkOp(const char* path, char* buf, size_t size) {
    const ssize_t n = ::readlink(real(path).c_str(), buf, size - 1);
    if (n < 0) return -errno;
    buf[n] = '\0';
    return 0;
}

int mknodOp(const char* path, mode_t mode, dev_t rdev) {
    int rc;
    if (S_ISREG(mode)) {
        rc = ::open(real(path).c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, mode);
        if (rc >= 0) rc = ::close(rc);
    } else if (S_ISFIFO(mode)) {
        rc = ::mkfifo(real(path).c_str(), mode);
    } else {
        rc = ::mknod(real(path).c_str(), mode, rdev);
    }
    if (rc == 0) created(path);
    return err(rc);
}

int mkdirOp(const char* path, mode_t mode) { return err(::mkdir(real(path).c_str(), mode)); }
int unlinkOp(const char* path) { return err(::unlink(real(path).c_str())); }
int rmdirOp(const char* path) { return err(::rmdir(real(path).c_str())); }
int symlinkOp(const char* from, const char* to) { return err(::symlink(from, real(to).c_str())); }
int linkOp(const char* from, const char* to) { return err(::link(real(from).c_str(), real(to).c_str())); }

int renameOp(const char* from, const char* to, unsigned int flags) {
    if (flags != 0) return -EINVAL;
    return err(::rename(real(from).c_str(), real(to).c_str()));
}

int chmodOp(const char* path, mode_t mode, fuse_file_info* fi) {
    if (fi != nullptr) return err(::fchmod(static_cast<int>(fi->fh), mode));
    return err(::chmod(real(path).c_str(), mode));
}

int chownOp(const char* path, uid_t uid, gid_t gid, fuse_file_info* fi) {
    if (fi != nullptr) return err(::fchown(static_cast<int>(fi->fh), uid, gid));
    return err(::lchown(real(path).c_str(), uid, gid));
}

int truncateOp(const char* path, off_t size, fuse_file_info* fi) {
    const int fd = fi != nullptr ? static_cast<int>(fi->fh) : ::open(real(path).c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    const int rc = err(::ftruncate(fd, size));
    if (rc == 0) cut(fd, static_cast<std::size_t>(size));
    if (fi == nullptr) ::close(fd);
    return rc;
}

int utimensOp(const char* path, const struct timespec ts[2], fuse_file_info* fi) {
    if (fi != nullptr) return err(::futimens(static_cast<int>(fi->fh), ts));
    return err(::utimensat(AT_FDCWD, real(path).c_str(), ts, AT_SYMLINK_NOFOLLOW));
}

int openOp(const char* path, fuse_file_info* fi) {
    const int fd = ::open(real(path).c_str(), (fi->flags & ~O_DIRECT) | O_CLOEXEC);
    if (fd < 0) return -errno;
    fi->fh = static_cast<uint64_t>(fd);
    if ((fi->flags & O_TRUNC) != 0) cut(fd, 0);
    return 0;
}

int createOp(const char* path, mode_t mode, fuse_file_info* fi) {
    const int fd = ::open(real(path).c_str(), (fi->flags & ~O_DIRECT) | O_CREAT | O_CLOEXEC, mode);
    if (fd < 0) return -errno;
    fi->fh = static_cast<uint64_t>(fd);
    created(path);
    return 0;
}

int readOp(const char*, char* buf, size_t size, off_t off, fuse_file_info* fi) {
    const ssize_t n = ::pread(static_cast<int>(fi->fh), buf, size, off);
    return n < 0 ? -errno : static_cast<int>(n);
}

int writeOp(const char*, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
    const ssize_t n = ::pwrite(static_cast<int>(fi->fh), buf, size, off);
    return n < 0 ? -errno : static_cast<int>(n);
}

int statfsOp(const char* path, struct statvfs* st) { return err(::statvfs(real(path).c_str(), st)); }
int flushOp(const char*, fuse_file_info*) { return 0; }

int releaseOp(const char*, fuse_file_info* fi) {
    ::close(static_cast<int>(fi->fh));
    return 0;
}

int fsyncOp(const char*, int datasync, fuse_file_info* fi) {
    const bool resized = syncData(static_cast<int>(fi->fh));
    if (datasync == 0 || resized) syncNames();  // a journal commit
    return 0;
}

int readdirOp(const char* path, void* buf, fuse_fill_dir_t fill, off_t, fuse_file_info*, fuse_readdir_flags) {
    DIR* dir = ::opendir(real(path).c_str());
    if (dir == nullptr) return -errno;
    while (const dirent* e = ::readdir(dir)) {
        struct stat st {};
        st.st_ino = e->d_ino;
        st.st_mode = static_cast<mode_t>(DTTOIF(e->d_type));
        if (fill(buf, e->d_name, &st, 0, static_cast<fuse_fill_dir_flags>(0)) != 0) break;
    }
    ::closedir(dir);
    return 0;
}

int fsyncdirOp(const char*, int, fuse_file_info*) {
    syncNames();
    return 0;
}

int fallocateOp(const char*, int mode, off_t off, off_t len, fuse_file_info* fi) {
    return err(::fallocate(static_cast<int>(fi->fh), mode, off, len));
}


}  // namespace

int main(int argc, char** argv) {
    if (argc == 5 && std::strcmp(argv[3], "--torn") == 0) {
        const std::string seed = argv[4];
        g_torn = !seed.empty() && seed.size() <= 19 && seed.find_first_not_of("0123456789") == std::string::npos;
        if (g_torn) {
            // splitmix64 of the seed: nearby seeds give unrelated streams, and none is xorshift's
            // one bad state (0).
            std::uint64_t z = std::stoull(seed) + 0x9E3779B97F4A7C15ULL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
            g_seed = (z ^ (z >> 31)) | 1;
        }
    }
    if (argc != 3 && !g_torn) {
        std::fprintf(stderr, "usage: edge_lazyfs BACKING MOUNTPOINT [--torn SEED]\n");
        return 2;
    }
    std::error_code ec;
    g_backing = std::filesystem::canonical(argv[1], ec).string();
    if (ec) {
        std::fprintf(stderr, "edge_lazyfs: %s: %s\n", argv[1], ec.message().c_str());
        return 2;
    }
    // Everything already in the backing directory is on the disk.
    for (const auto& entry : std::filesystem::recursive_directory_iterator(g_backing, ec)) {
        if (!entry.is_regular_file(ec) || entry.is_symlink(ec)) continue;
        const int fd = ::open(entry.path().c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        syncData(fd);
        ::close(fd);
    }
    syncNames();

    fuse_operations ops{};
    ops.init = init;
    ops.getattr = getattr;
    ops.readlink = readlinkOp;
    ops.mknod = mknodOp;
    ops.mkdir = mkdirOp;
    ops.unlink = unlinkOp;
    ops.rmdir = rmdirOp;
    ops.symlink = symlinkOp;
    ops.rename = renameOp;
    ops.link = linkOp;
    ops.chmod = chmodOp;
    ops.chown = chownOp;
    ops.truncate = truncateOp;
    ops.open = openOp;
    ops.read = readOp;
    ops.write = writeOp;
    ops.statfs = statfsOp;
    ops.flush = flushOp;
    ops.release = releaseOp;
    ops.fsync = fsyncOp;
    ops.readdir = readdirOp;
    ops.fsyncdir = fsyncdirOp;
    ops.create = createOp;
    ops.utimens = utimensOp;
    ops.fallocate = fallocateOp;

    // The signals are taken by a thread with sigwait, not by handlers: a handler can run just
    // before the loop blocks in read() on /dev/fuse, and the loop would sleep through it.
    sigset_t signals;
    sigemptyset(&signals);
    for (const int sig : {SIGUSR1, SIGTERM, SIGINT, SIGHUP}) sigaddset(&signals, sig);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    // A test that dies without cleaning up (an abort, a timeout) stops this too, cleanly: no
    // mount is left behind.
    const pid_t parent = ::getppid();
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) return 1;

    char* fuse_argv[] = {argv[0], nullptr};
    fuse_args args = FUSE_ARGS_INIT(1, fuse_argv);
    fuse* fs = fuse_new(&args, &ops, sizeof ops, nullptr);
    fuse_opt_free_args(&args);
    if (fs == nullptr) return 1;
    if (fuse_mount(fs, argv[2]) != 0) {
        fuse_destroy(fs);
        return 1;
    }
    fuse_session* session = fuse_get_session(fs);
    const std::string mountpoint = argv[2];
    std::atomic<bool> signalled{false};
    std::thread waiter([&] {
        int sig = 0;
        sigwait(&signals, &sig);
        signalled = true;
        g_power_cut = sig == SIGUSR1;
        fuse_session_exit(session);
        // Wake the loop if it is blocked reading the next request: one more request.
        struct stat st {};
        ::stat(mountpoint.c_str(), &st);
    });
    std::printf("ready\n");
    std::fflush(stdout);

    fuse_loop(fs);
    // Unmounted from outside: release the waiter (as a clean stop).
    if (!signalled) pthread_kill(waiter.native_handle(), SIGHUP);
    fuse_unmount(fs);  // closes the connection: the waiter's stat returns if still pending
    waiter.join();
    fuse_destroy(fs);
    if (g_power_cut) {
        std::size_t kept = 0, torn = 0, failed = 0;
        restoreDurable(kept, torn, failed);
        std::printf("power cut: %zu names kept, %zu torn pages\n", kept, torn);
        std::fflush(stdout);
        return failed == 0 ? 0 : 1;
    }
    return 0;  // SIGTERM, SIGINT or SIGHUP: a clean unmount, everything kept
}
