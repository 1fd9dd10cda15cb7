/* COCO annotation JSON: coco_parse (the streaming parser) on arbitrary bytes; accepted data
 * is looked up by id and counted into the default groups. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "reprshift/coco.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rs_err err;
    coco_data *d = NULL;
    if (coco_parse((const char *)data, size, "fuzz.json", &d, &err) != 0) {
        if (!strstr(err.msg, "fuzz.json")) abort();
        return 0;
    }
    for (size_t i = 0; i < d->n_images; i++) {
        if (coco_find_image(d, d->images[i].id) != (long)i) abort();
        size_t b, e;
        coco_image_instances(d, d->images[i].id, &b, &e);
        coco_image_captions(d, d->images[i].id, &b, &e);
    }
    for (size_t i = 0; i < d->n_categories; i++)
        if (coco_find_category(d, d->categories[i].id) != (long)i) abort();
    coco_sample_opts o;
    coco_sample_defaults(&o);
    coco_sample_stats st;
    coco_group_counts(d, &o, &st, &err);
    coco_free(d);
    return 0;
}
