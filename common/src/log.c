/* common/src/log.c — leveled logging: one line per message, written with one write() under a lock
 */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include "strbuf.h"

static cw_log_level min_level = CW_LOG_INFO;
static int json_format = 0;
static char program_name[64] = "chainwatch";
static char log_path[1024];
static int log_fd = 2;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int cw_log_init(const char *program, const char *level, const char *format)
{
    int lvl = -1;
    for (int i = 0; i < 4; i++)
        if (level && strcmp(level, level_names[i]) == 0)
            lvl = i;
    if (level && strcmp(level, "warning") == 0)
        lvl = CW_LOG_WARN;
    if (lvl < 0)
        return -1;
    if (format && strcmp(format, "json") != 0 && strcmp(format, "text") != 0)
        return -1;
    min_level = (cw_log_level) lvl;
    json_format = format && strcmp(format, "json") == 0;
    if (program)
        snprintf(program_name, sizeof(program_name), "%s", program);
    return 0;
}

int cw_log_set_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    pthread_mutex_lock(&log_lock);
    if (log_fd != 2)
        close(log_fd);
    log_fd = fd;
    snprintf(log_path, sizeof(log_path), "%s", path);
    pthread_mutex_unlock(&log_lock);
    return 0;
}

void cw_log_reopen(void)
{
    if (log_path[0])
        (void) cw_log_set_file(log_path);
}

int cw_log_enabled(cw_log_level level)
{
    return level >= min_level;
}

/* cw_log formats the message, prefixes time and level (or wraps it in a JSON object) and writes
 * the whole line at once so lines from different threads never interleave. */
void cw_log(cw_log_level level, const char *fmt, ...)
{
    char msg[2048], ts[40];
    struct timespec now;
    struct tm tm;
    va_list ap;
    cw_strbuf line = CW_STRBUF_INIT;

    if (level < min_level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);

    if (json_format) {
        cw_strbuf_printf(&line,
                         "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"program\":\"%s\",\"msg\":", ts,
                         now.tv_nsec / 1000000, level_names[level], program_name);
        cw_strbuf_json_string(&line, msg, strlen(msg));
        cw_strbuf_append(&line, "}\n", 2);
    } else {
        cw_strbuf_printf(&line, "%s.%03ldZ %s %s: %s\n", ts, now.tv_nsec / 1000000, program_name,
                         level_names[level], msg);
    }
    if (line.data) {
        pthread_mutex_lock(&log_lock);
        ssize_t w = write(log_fd, line.data, line.len);
        (void) w;
        pthread_mutex_unlock(&log_lock);
    }
    cw_strbuf_free(&line);
}
