/*
 * xfsstore.h - a store on an XFS image that pgsnap makes and manages
 * (`pgsnap store xfs`), for big snapshots where the machine has no
 * filesystem that shares extents: overlay copy-up and copies then reflink.
 * Internal: the CLI's `store` command, store.c's hook and `doctor`.
 */
#ifndef PGSNAP_XFSSTORE_H
#define PGSNAP_XFSSTORE_H

#include "internal.h"

#include <stdint.h>

#define XFS_STORE_IMAGE "xfs.img"   /* HOME/xfs.img, sparse */
#define XFS_STORE_MOUNT "xfs"       /* HOME/xfs, where it is mounted */
#define XFS_STORE_DEFAULT_BYTES (20ull << 30)
#define XFS_STORE_MIN_BYTES (512ull << 20)

/* pgsnap_store_open's hook: when HOME holds a store image, mount it if it
 * is not (after a reboot; root only) and move the whole store (snapshots,
 * clones, registry) onto it.  0 when there is none. */
int xfs_store_attach(pgsnap_store *s, pgsnap_error *err);
/* The next stores this process opens are left where they are, image or
 * not (for `pgsnap store` itself, which must see and remove a store
 * whose image no longer mounts). */
void xfs_store_no_attach(void);

typedef struct xfs_store_info {
	bool exists;            /* HOME/xfs.img is there */
	bool mounted;           /* on HOME/xfs, through a loop device */
	char image[600], mnt[600], dev[64];
	uint64_t size;          /* the image's apparent size */
	uint64_t used, disk;    /* bytes used inside; bytes of host disk */
} xfs_store_info;

/* What s (opened without attaching) has. */
void xfs_store_info_get(const pgsnap_store *s, xfs_store_info *i);
/* Make the image (bytes, sparse) and mount it; the snapshots already
 * built are copied onto it (the originals stay, for after a removal).
 * Root only; every clone of the store is stopped first.  Already there:
 * 0 and nothing done.  s is then moved onto it. */
int xfs_store_make(pgsnap_store *s, uint64_t bytes, pgsnap_error *err);
/* Stop the clones on it, unmount it, detach its loop device and delete
 * the image: nothing of it is left.  1 when there was none. */
int xfs_store_remove(pgsnap_store *s, pgsnap_error *err);
/* For doctor: one line saying whether the store is on such an image, or
 * whether one would help here and the command that makes it. */
void xfs_store_advice(const pgsnap_store *s, bool reflinks, char *buf,
		      size_t len);
/* "20G", "512M", "1T", bytes: 0 or -EINVAL. */
int xfs_parse_size(const char *text, uint64_t *bytes);

#endif
