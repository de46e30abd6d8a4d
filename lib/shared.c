/* lib/shared.c — mpx_shared: memory mapped MAP_SHARED in the parent before
 * fork, so that every stage process inherits it at the same address.
 *
 * Owns the mapping.  fork() (and the fork server's clone) copy the mapping
 * into each child, which is all the sharing needs.  The one hook into the
 * graph is for mpx_shared_new_readonly's memory: a list of it, which each
 * stage process makes read-only as it starts (shared_stage_protect).
 *
 * Why MAP_SHARED | MAP_ANONYMOUS and not a memfd: both are shmem pages
 * that no file system shows, but a memfd is created with VM_NORESERVE, so
 * its pages are charged only when first touched, and under strict
 * overcommit a touch past the limit is a SIGBUS in whichever process made
 * it; an anonymous shared mapping is charged whole at mmap, so the same
 * shortage is an ENOMEM from mpx_shared_new.  It also needs no descriptor
 * (none to leak into the stages' commands, none counted against their
 * open-file limit).  What a memfd would add, handing the memory to an
 * unrelated or exec'd program, the API does not offer.
 */
#define _GNU_SOURCE
#include "mpx/shared.h"
#include "shared_stage.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct mpx_shared {
    void *data;  /* NULL when size is 0: nothing is mapped */
    size_t size;
    bool readonly;             /* mpx_shared_new_readonly: on the list below */
    struct mpx_shared *next;   /* on that list */
};

/* mpx_shared_new_readonly's objects.  Added at the head with an atomic
 * store of a node already whole, so that a process forked at any moment
 * (by a graph started in another thread) reads a list it can walk without
 * the lock, which fork may have left held; removed under the lock. */
static mpx_shared_t *readonly_head;
static pthread_mutex_t readonly_lock = PTHREAD_MUTEX_INITIALIZER;

/* `bytes` of zeroed anonymous memory, MAP_SHARED or MAP_PRIVATE (`how`),
 * in 2 MiB pages where the system allows them for that kind of memory;
 * size 0 maps nothing. */
static mpx_shared_t *new_anon(size_t bytes, int how)
{
    mpx_shared_t *s = malloc(sizeof *s);
    if (!s)
        return NULL;
    *s = (mpx_shared_t){NULL, bytes, how == MAP_PRIVATE, NULL};
    if (bytes == 0)
        return s;
    /* Anonymous pages are zero; no MAP_NORESERVE, so that the size is
     * charged now (see the top of the file). */
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, how | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        int err = errno; /* ENOMEM, for a length past the address space too */
        free(s);
        errno = err;
        return NULL;
    }
    /* Shared: every stage process maps the pages it touches anew (fork
     * copies no page table of a shared mapping): with 4 KiB pages that is
     * a fault and an unmap per page per process, which costs a light pass
     * over a large array much of what a second worker gains.  Huge pages
     * make it one per 2 MiB, where the system allows them for shared
     * memory (/sys/kernel/mm/transparent_hugepage/shmem_enabled "advise"
     * or more).  Private: fork copies one entry per 2 MiB instead of 512,
     * and a reader takes fewer TLB misses (transparent_hugepage/enabled
     * "madvise" or "always", most systems).  Elsewhere the advice is
     * ignored. */
    if (bytes >= ((size_t)2 << 20))
        (void)madvise(p, bytes, MADV_HUGEPAGE);
    s->data = p;
    return s;
}

mpx_shared_t *mpx_shared_new(size_t bytes) { return new_anon(bytes, MAP_SHARED); }

mpx_shared_t *mpx_shared_new_readonly(size_t bytes)
{
    /* Private, so that fork passes the parent's page tables on (copied on
     * write, and no process but the parent writes). */
    mpx_shared_t *s = new_anon(bytes, MAP_PRIVATE);
    if (s && s->data) {
        pthread_mutex_lock(&readonly_lock);
        s->next = readonly_head;
        __atomic_store_n(&readonly_head, s, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&readonly_lock);
    }
    return s;
}

int shared_stage_protect(void)
{
    /* A fork while another thread of the parent held the lock left it
     * held here, where nobody will release it: this process has one
     * thread now, so it starts afresh. */
    readonly_lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
    for (mpx_shared_t *s = __atomic_load_n(&readonly_head, __ATOMIC_ACQUIRE); s; s = s->next)
        if (s->data && mprotect(s->data, s->size, PROT_READ) != 0)
            return -1;
    return 0;
}

/* The size of the regular file open at fd, or -1 with errno set. */
static int file_size(int fd, size_t *size)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        return -1;
    if (S_ISDIR(sb.st_mode)) {
        errno = EISDIR;
        return -1;
    }
    /* A device's or a pipe's st_size is not what mmap would map. */
    if (!S_ISREG(sb.st_mode)) {
        errno = EINVAL;
        return -1;
    }
    if ((uintmax_t)sb.st_size > SIZE_MAX) {
        errno = EFBIG;
        return -1;
    }
    *size = (size_t)sb.st_size;
    return 0;
}

mpx_shared_t *mpx_shared_map(const char *path, bool writable)
{
    if (!path || !*path) {
        errno = EINVAL;
        return NULL;
    }
    /* O_NONBLOCK: opening a FIFO by mistake must not wait for a writer;
     * it is refused as not a regular file. */
    int fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return NULL;
    size_t size = 0;
    mpx_shared_t *s = NULL;
    if (file_size(fd, &size) != 0 || !(s = malloc(sizeof *s)))
        goto fail;
    *s = (mpx_shared_t){NULL, size, false, NULL};
    if (size > 0) {
        int prot = PROT_READ | (writable ? PROT_WRITE : 0);
        void *p = mmap(NULL, size, prot, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            goto fail;
        s->data = p;
    }
    close(fd); /* the mapping keeps the file */
    return s;
fail:;
    int err = errno;
    free(s);
    close(fd);
    errno = err;
    return NULL;
}

void *mpx_shared_data(mpx_shared_t *s) { return s ? s->data : NULL; }

size_t mpx_shared_size(const mpx_shared_t *s) { return s ? s->size : 0; }

void mpx_shared_destroy(mpx_shared_t **s)
{
    if (!s || !*s)
        return;
    if ((*s)->readonly && (*s)->data) {
        pthread_mutex_lock(&readonly_lock);
        mpx_shared_t **at = &readonly_head;
        while (*at && *at != *s)
            at = &(*at)->next;
        if (*at)
            __atomic_store_n(at, (*s)->next, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&readonly_lock);
    }
    if ((*s)->data)
        munmap((*s)->data, (*s)->size);
    free(*s);
    *s = NULL;
}
