/* reprshift preprocess: one image -> SigLIP model input, for checking and debugging.
 * Decode (as Pillow's convert("RGB")), apply --edit operations in order, then SigLIP
 * preprocessing as the chosen transformers processor (--image-processor pil|torchvision);
 * writes pixels_u8 U8 [S,S,3] and pixel_values F32 [3,S,S] atomically. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "reprshift/image.h"
#include "reprshift/image_edit.h"
#include "reprshift/safetensors.h"
#include "reprshift/version.h"

#define MAX_EDITS 32

static const char USAGE[] =
    "usage: reprshift preprocess --image PATH --size S [--image-processor pil|torchvision]\n"
    "                            [--edit NAME=VALUE ...] --out F.safetensors\n"
    "\n"
    "Decode a JPEG/PNG as Pillow's Image.open(p).convert(\"RGB\") does, apply the edits in\n"
    "order, then SigLIP preprocessing exactly as one of transformers 5's processors does it:\n"
    "resize to SxS, rescale and normalise to [-1, 1], CHW. Writes pixels_u8 U8 [S,S,3] (the\n"
    "resized image) and pixel_values F32 [3,S,S].\n"
    "\n"
    "  --image PATH        input image (JPEG or PNG)\n"
    "  --size S            output side in pixels (224, 448, 896 for PaliGemma-2)\n"
    "  --image-processor P which transformers processor to reproduce (default pil):\n"
    "                        pil          SiglipImageProcessorPil: Pillow bicubic resize,\n"
    "                                     float32(x * (1/255)), (x - 0.5) / 0.5\n"
    "                        torchvision  SiglipImageProcessor (the torchvision backend that\n"
    "                                     transformers picks when torchvision is installed),\n"
    "                                     CPU: torch's uint8 antialiased bicubic resize,\n"
    "                                     (x - 127.5) / 127.5\n"
    "                      they differ by 1-2 levels on ~0.3% of the resized values, more on\n"
    "                      portrait images (Pillow 13 filters vertically first); docs/images.md\n"
    "  --edit NAME=VALUE   before resizing; repeatable, applied in order:\n"
    "                        brightness=F contrast=F saturation=F (Pillow ImageEnhance factors)\n"
    "                        redness=F redness_plain=F (scale R; redness keeps BT.601\n"
    "                        luma, redness_plain does not; redness_luma = redness)\n"
    "                        blur=R (Pillow GaussianBlur radius) rotate=DEG (Pillow rotate,\n"
    "                        bicubic, counter-clockwise, same size, black fill)\n"
    "  --out FILE          output .safetensors (written atomically)\n"
    "  -h, --help          this help\n";

int cmd_preprocess(int argc, char **argv) {
    static const struct option opts[] = {
        {"image", required_argument, 0, 'i'}, {"size", required_argument, 0, 's'},
        {"edit", required_argument, 0, 'e'},  {"out", required_argument, 0, 'o'},
        {"image-processor", required_argument, 0, 'p'},
        {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
    const char *image = NULL, *out = NULL, *size_s = NULL;
    rs_edit edits[MAX_EDITS];
    const char *edit_specs[MAX_EDITS];
    int n_edits = 0, c;
    rs_err err = {0};
    rs_image_processor proc = RS_IMAGE_PROCESSOR_PIL;
    optind = 1;
    opterr = 0; /* our own one-line message instead of getopt's */
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'i': image = optarg; break;
        case 's': size_s = optarg; break;
        case 'o': out = optarg; break;
        case 'p':
            if (rs_image_processor_parse(optarg, &proc)) {
                fprintf(stderr, "reprshift preprocess: --image-processor must be pil or torchvision (got \"%s\")\n",
                        optarg);
                return 2;
            }
            break;
        case 'e':
            if (n_edits == MAX_EDITS) {
                fprintf(stderr, "reprshift preprocess: at most %d --edit options\n", MAX_EDITS);
                return 2;
            }
            if (rs_edit_parse(optarg, &edits[n_edits], &err)) {
                fprintf(stderr, "reprshift preprocess: %s\n", err.msg);
                return 2;
            }
            edit_specs[n_edits++] = optarg;
            break;
        case 'h': fputs(USAGE, stdout); return 0;
        default:
            fprintf(stderr, "reprshift preprocess: bad option '%s' (see --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc || !image || !size_s || !out) {
        fprintf(stderr, "reprshift preprocess: %s (see --help)\n",
                optind != argc ? "unexpected argument" : !image ? "--image is required"
                : !size_s ? "--size is required" : "--out is required");
        return 2;
    }
    long size;
    if (cli_parse_long("preprocess", "--size", size_s, 1, 8192, &size)) return 2;

    int status = 1;
    rs_image img = {0, 0, NULL};
    uint8_t *u8 = NULL;
    float *pv = NULL;
    st_writer *w = NULL;
    char meta[4096], dims[64];
    const int64_t shp_u8[3] = {size, size, 3}, shp_pv[3] = {3, size, size};
    size_t np = (size_t)size * size, k = 0;
    if (rs_image_load(image, &img, &err)) goto done;
    snprintf(dims, sizeof dims, "%dx%d", img.w, img.h);
    if (rs_edits_apply(&img, edits, n_edits, &err)) {
        rs_err_prefix(&err, "%s", image);
        goto done;
    }
    u8 = malloc(np * 3);
    pv = malloc(np * 3 * sizeof *pv);
    if (!u8 || !pv) {
        rs_errk(&err, RS_ENOMEM, "out of memory for a %ldx%ld output", size, size);
        goto done;
    }
    if (rs_siglip_preprocess_with(&img, (int)size, proc, u8, pv, &err)) goto done;
    w = st_writer_new();
    if (!w) {
        rs_errk(&err, RS_ENOMEM, "out of memory");
        goto done;
    }
    meta[0] = 0;
    for (int i = 0; i < n_edits && k < sizeof meta; i++)
        k += (size_t)snprintf(meta + k, sizeof meta - k, "%s%s", i ? "," : "", edit_specs[i]);
    if (st_writer_add(w, "pixels_u8", RS_DT_U8, 3, shp_u8, u8, &err) ||
        st_writer_add(w, "pixel_values", RS_DT_F32, 3, shp_pv, pv, &err) ||
        st_writer_meta(w, "source", image, &err) || st_writer_meta(w, "source_size", dims, &err) ||
        st_writer_meta(w, "edits", meta, &err) ||
        st_writer_meta(w, "image_processor", rs_image_processor_name(proc), &err) ||
        st_writer_meta(w, "preprocess",
                       proc == RS_IMAGE_PROCESSOR_TORCHVISION
                           ? "transformers SiglipImageProcessor (torchvision backend, CPU): torch uint8 antialiased "
                             "bicubic resize, (x-127.5)/127.5, CHW"
                           : "transformers SiglipImageProcessorPil: Pillow bicubic resize, x*(1/255), (x-0.5)/0.5, CHW",
                       &err) ||
        st_writer_meta(w, "reprshift_version", RS_VERSION, &err) || st_writer_save(w, out, &err))
        goto done;
    status = 0;
done:
    if (status) fprintf(stderr, "reprshift preprocess: %s\n", err.msg);
    st_writer_free(w);
    free(u8);
    free(pv);
    rs_image_free(&img);
    return status;
}
