// edge_lazyfs: a FUSE file system for power-cut tests.
//
// Every operation goes to a backing directory at once, so the programs on the mount see their
// own writes (as they would through a page cache). Beside that, it keeps what a disk would hold
// after a power cut, with ext4's ordering:
//   - a file's content as of its last fsync or fdatasync (nothing, for a file never synced);
//   - the names (creations, renames, deletions, directories) as of the last fsync or fsyncdir
//     of anything: ext4's journal commits every earlier change of names with any fsync.
// SIGUSR1 is the power cut: the file system stops serving, is unmounted, and the backing
// directory is rewritten to that durable state, as the disk would come back. SIGTERM or SIGINT
// unmount cleanly (everything is kept, as an orderly shutdown flushes).
//
// Usage: edge_lazyfs BACKING MOUNTPOINT
// Runs in the foreground, single-threaded; prints "ready" once mounted and, after a power cut,
// "power cut: N names kept" once the backing directory holds the durable state.
// Test tool only (tests/integration/ota_test.cpp); needs /dev/fuse and the right to mount.
#define FUSE_USE_VERSION 31
#include <fuse.h>
#include <fuse_lowlevel.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

namespace {

std::string g_backing;
fuse_session* g_session = nullptr;
volatile std::sig_atomic_t g_power_cut = 0;

using Content = std::shared_ptr<const std::string>;

/// A name as it would survive a power cut.
struct Durable {
    mode_t mode = 0;
    std::string link;  // symlink target
    Content data;      // regular file: content as of its last sync (null: never synced)
};

/// Content as of the last sync, per live inode of the backing directory.
std::map<ino_t, Content> g_synced;
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

/// Records fd's current content as synced.
void syncData(int fd) {
    // The caller's descriptor may be write-only: read through a fresh one.
    const std::string self = "/proc/self/fd/" + std::to_string(fd);
    const int rd = ::open(self.c_str(), O_RDONLY | O_CLOEXEC);
    if (rd < 0) return;
    struct stat st {};
    auto content = std::make_shared<std::string>();
    if (::fstat(rd, &st) == 0 && readAll(rd, *content)) g_synced[st.st_ino] = std::move(content);
    ::close(rd);
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
            const auto it = g_synced.find(st.st_ino);
            if (it != g_synced.end()) d.data = it->second;
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
    if (::lstat(real(path).c_str(), &st) == 0) g_synced.erase(st.st_ino);
}

/// The power cut: the backing directory becomes what the disk holds.
std::size_t restoreDurable() {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(g_backing, ec)) {
        std::filesystem::remove_all(entry.path(), ec);
    }
    std::size_t kept = 0;
    for (const auto& [path, d] : g_names) {
        const std::string target = g_backing + path;
        if (S_ISDIR(d.mode)) {
            ::mkdir(target.c_str(), d.mode & 07777);
        } else if (S_ISLNK(d.mode)) {
            if (::symlink(d.link.c_str(), target.c_str()) != 0) continue;
        } else if (S_ISREG(d.mode)) {
            const int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, d.mode & 07777);
            if (fd < 0) continue;
            if (d.data) {
                std::size_t done = 0;
                while (done < d.data->size()) {
                    const ssize_t n = ::write(fd, d.data->data() + done, d.data->size() - done);
                    if (n <= 0) break;
                    done += static_cast<std::size_t>(n);
                }
            }
            ::close(fd);
        } else {
            continue;  // sockets and fifos do not outlive a boot
        }
        ++kept;
    }
    return kept;
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
    if (fi != nullptr) return err(::ftruncate(static_cast<int>(fi->fh), size));
    return err(::truncate(real(path).c_str(), size));
}

int utimensOp(const char* path, const struct timespec ts[2], fuse_file_info* fi) {
    if (fi != nullptr) return err(::futimens(static_cast<int>(fi->fh), ts));
    return err(::utimensat(AT_FDCWD, real(path).c_str(), ts, AT_SYMLINK_NOFOLLOW));
}

int openOp(const char* path, fuse_file_info* fi) {
    const int fd = ::open(real(path).c_str(), (fi->flags & ~O_DIRECT) | O_CLOEXEC);
    if (fd < 0) return -errno;
    fi->fh = static_cast<uint64_t>(fd);
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

int fsyncOp(const char*, int, fuse_file_info* fi) {
    syncData(static_cast<int>(fi->fh));
    syncNames();
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

void onPowerCut(int) {
    g_power_cut = 1;
    if (g_session != nullptr) fuse_session_exit(g_session);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: edge_lazyfs BACKING MOUNTPOINT\n");
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

    char* fuse_argv[] = {argv[0], nullptr};
    fuse_args args = FUSE_ARGS_INIT(1, fuse_argv);
    fuse* fs = fuse_new(&args, &ops, sizeof ops, nullptr);
    fuse_opt_free_args(&args);
    if (fs == nullptr) return 1;
    if (fuse_mount(fs, argv[2]) != 0) {
        fuse_destroy(fs);
        return 1;
    }
    g_session = fuse_get_session(fs);
    fuse_set_signal_handlers(g_session);
    struct sigaction sa {};
    sa.sa_handler = onPowerCut;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: the blocking read of /dev/fuse must return
    sigaction(SIGUSR1, &sa, nullptr);
    std::printf("ready\n");
    std::fflush(stdout);

    const int rc = fuse_loop(fs);
    fuse_remove_signal_handlers(g_session);
    fuse_unmount(fs);
    fuse_destroy(fs);
    if (g_power_cut != 0) {
        const auto kept = restoreDurable();
        std::printf("power cut: %zu names kept\n", kept);
        std::fflush(stdout);
        return 0;
    }
    // Stopped by SIGTERM or SIGINT (libfuse reports the signal as the loop's result): a clean
    // unmount, everything kept.
    (void)rc;
    return 0;
}
