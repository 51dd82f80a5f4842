/* extension/src/chainwatch.c — module entry point: magic block, GUCs, cache callbacks */
#include "chainwatch.h"

#include "utils/guc.h"

PG_MODULE_MAGIC;

void _PG_init(void);

/*
 * _PG_init runs when the library is loaded, by shared_preload_libraries or by the first call
 * of one of its functions. It only registers things; it never touches the database.
 */
void _PG_init(void)
{
    ModelCacheInit();
    MarkGUCPrefixReserved("chainwatch");
}
