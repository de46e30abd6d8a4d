/* TEMPORARY interface copy until the controller lands (see helper). */
#ifndef MPX_LIB_ELASTIC_H
#define MPX_LIB_ELASTIC_H
#include <stdbool.h>
#include <stdint.h>
typedef struct elastic_sample {
    int active;
    int min, max;
    bool changing;
    bool frozen;
    double busy_min, busy_mean, busy_max;
    double blocked_mean;
    double up_blocked;
    double rate;
    uint64_t queue, capacity;
} elastic_sample_t;
typedef struct elastic_decision {
    int group;
    int delta;
    char reason[256];
} elastic_decision_t;
typedef struct elastic elastic_t;
elastic_t *elastic_new(int ngroups);
void elastic_free(elastic_t **e);
int elastic_decide(elastic_t *e, double now, const elastic_sample_t *s, int ngroups, int room,
                   elastic_decision_t *d);
void elastic_done(elastic_t *e, int group, int delta, bool ok, double now);
#endif
