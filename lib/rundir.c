/* lib/rundir.c — the private runtime directory of a running graph: made
 * with mode 0700 so that only the graph's user can reach its sockets, and
 * removed with everything in it when the graph ends. */
#define _GNU_SOURCE
#include "rundir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mpx/error.h"

/* An ipc:// endpoint is a unix socket path: 108 bytes with the NUL.  The
 * longest name put in the directory is "/i" and ten digits. */
#define SUN_PATH_MAX 108
#define LONGEST_ENTRY 13

int rundir_create(char *out, size_t cap, char *err, size_t errcap)
{
    /* /dev/shm before /tmp: a socket file is an inode, and on a disk
     * file system (this machine's /tmp is ext4) making and removing one
     * is journal work, 40-150 us each, two per process; tmpfs does it in
     * memory.  $XDG_RUNTIME_DIR, where a login session has one, is tmpfs
     * already. */
    const char *bases[] = {getenv("XDG_RUNTIME_DIR"), getenv("TMPDIR"), "/dev/shm", "/tmp"};
    int last_errno = 0;
    for (size_t i = 0; i < sizeof bases / sizeof *bases; i++) {
        const char *base = bases[i];
        if (!base || base[0] != '/')
            continue;
        char tmpl[SUN_PATH_MAX];
        int n = snprintf(tmpl, sizeof tmpl, "%s/mpx-%ld-XXXXXX", base, (long)getpid());
        if (n < 0 || (size_t)n + LONGEST_ENTRY >= SUN_PATH_MAX || (size_t)n >= cap)
            continue; /* too deep for unix socket paths: try the next base */
        if (!mkdtemp(tmpl)) {
            last_errno = errno;
            continue;
        }
        if (chmod(tmpl, 0700) != 0) {
            last_errno = errno;
            rmdir(tmpl);
            continue;
        }
        memcpy(out, tmpl, (size_t)n + 1);
        return 0;
    }
    snprintf(err, errcap, "cannot create a runtime directory (tried $XDG_RUNTIME_DIR, "
             "$TMPDIR, /dev/shm and /tmp): %s", last_errno ? strerror(last_errno) : "paths too long");
    return MPX_ESYS;
}

int rundir_remove(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                unlinkat(dirfd(d), e->d_name, 0);
        closedir(d);
    }
    if (rmdir(dir) != 0 && errno != ENOENT)
        return MPX_ESYS;
    return 0;
}
