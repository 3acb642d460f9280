#ifndef FERRY_CZIP_SHIM_H
#define FERRY_CZIP_SHIM_H
#include <zip.h>
#endif
