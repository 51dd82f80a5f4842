/* common/src/log.h — leveled, thread-safe logging for the daemons (text or JSON lines on stderr) */
#ifndef CW_LOG_H
#define CW_LOG_H

typedef enum cw_log_level {
    CW_LOG_DEBUG = 0,
    CW_LOG_INFO,
    CW_LOG_WARN,
    CW_LOG_ERROR,
} cw_log_level;

/* cw_log_init sets the program name, level (debug|info|warn|error) and format (text|json);
 * returns -1 on an unknown level or format. Logging works before init (info, text). */
int cw_log_init(const char *program, const char *level, const char *format);
/* cw_log_set_file sends logs to path (appending) instead of stderr; -1 if it cannot be opened */
int cw_log_set_file(const char *path);
/* cw_log_reopen reopens the log file (after rotation; call from the main loop on SIGHUP) */
void cw_log_reopen(void);
void cw_log(cw_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cw_log_enabled(cw_log_level level);

#define log_debug(...) cw_log(CW_LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  cw_log(CW_LOG_INFO, __VA_ARGS__)
#define log_warn(...)  cw_log(CW_LOG_WARN, __VA_ARGS__)
#define log_error(...) cw_log(CW_LOG_ERROR, __VA_ARGS__)

#endif /* CW_LOG_H */
