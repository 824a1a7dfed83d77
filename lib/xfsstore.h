/*
 * xfsstore.h - a store on an XFS image that pgsnap makes and manages
 * (`pgsnap store xfs`), for big snapshots where the machine has no
 * filesystem that shares extents: overlay copy-up and copies then reflink.
 * Internal: store.c's hook (records layer); making and removing it are
 * driven from above (pgsnap.c), which stops what runs first.
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
/* Stop every clone and the service of the store at home (s's own HOME,
 * or the image's mount): the caller's, from a layer above. */
typedef int (*xfs_quiesce_fn)(pgsnap_store *s, const char *home,
			      pgsnap_error *err);

typedef struct xfs_store_info {
	bool exists;            /* HOME/xfs.img is there */
	bool mounted;           /* on HOME/xfs, through a loop device */
	char image[600], mnt[600], dev[64];
	uint64_t size;          /* the image's apparent size */
	uint64_t used, disk;    /* bytes used inside; bytes of host disk */
} xfs_store_info;

/* What s (opened as is) has. */
void xfs_store_info_get(const pgsnap_store *s, xfs_store_info *i);
/* Make the image (bytes, sparse) and mount it; the snapshots already
 * built are copied onto it (the originals stay, for after a removal).
 * Root only; quiesce stops the store's clones first.  Already there:
 * 0 and nothing done.  s is then moved onto it. */
int xfs_store_make(pgsnap_store *s, uint64_t bytes, xfs_quiesce_fn quiesce,
		   pgsnap_error *err);
/* quiesce the clones on it, unmount it, detach its loop device and
 * delete the image: nothing of it is left.  1 when there was none. */
int xfs_store_remove(pgsnap_store *s, xfs_quiesce_fn quiesce,
		     pgsnap_error *err);
/* Where s's image is (or would be) mounted. */
void xfs_store_mnt(const pgsnap_store *s, char *mnt, size_t len);
/* mkfs.xfs is installed. */
bool xfs_mkfs_found(void);

#endif
