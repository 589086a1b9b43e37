/** @file version.h
    xmmap: the compile-time version (xm_version() gives the run-time one). */
#ifndef XMMAP_VERSION_H
#define XMMAP_VERSION_H
#define XMMAP_VERSION_MAJOR 0 /**< incompatible API/ABI changes */
#define XMMAP_VERSION_MINOR 1 /**< additions */
#define XMMAP_VERSION_PATCH 0 /**< fixes */
#endif
