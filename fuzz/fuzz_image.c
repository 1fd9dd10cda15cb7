/* Image decoding (JPEG via libjpeg-turbo, PNG via libpng) through rs_image_decode; a
 * decoded image is resized and SigLIP-preprocessed to 16 x 16 (reads every pixel). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "reprshift/image.h"

/* Pixel count a PNG (IHDR) or JPEG (first SOFn) header claims, or 0 if not found. Used only
 * to skip inputs above 2^22 pixels: they are legal (the library caps at 2^28) but take
 * seconds each under ASan and would starve the fuzzer; the caps themselves are tested by
 * tests/malformed (png_huge_dims, jpeg_huge_dims, png_too_many_pixels). */
static uint64_t claimed_pixels(const uint8_t *d, size_t n) {
    if (n >= 24 && !memcmp(d, "\x89PNG", 4))
        return (uint64_t)((uint32_t)d[16] << 24 | (uint32_t)d[17] << 16 | (uint32_t)d[18] << 8 | d[19]) *
               (uint64_t)((uint32_t)d[20] << 24 | (uint32_t)d[21] << 16 | (uint32_t)d[22] << 8 | d[23]);
    for (size_t i = 2; i + 9 <= n; i++)
        if (d[i] == 0xFF && d[i + 1] >= 0xC0 && d[i + 1] <= 0xCF && d[i + 1] != 0xC4 && d[i + 1] != 0xC8 &&
            d[i + 1] != 0xCC)
            return (uint64_t)(d[i + 5] << 8 | d[i + 6]) * (uint64_t)(d[i + 7] << 8 | d[i + 8]);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (claimed_pixels(data, size) > (1u << 22)) return 0;
    rs_err err;
    rs_image img;
    memset(&img, 0, sizeof img);
    if (rs_image_decode(data, size, "fuzz.img", &img, &err) != 0) {
        if (!strstr(err.msg, "fuzz.img")) abort();
        return 0;
    }
    if (img.w < 1 || img.h < 1 || !img.rgb) abort();
    if ((uint64_t)img.w * (uint64_t)img.h <= (1u << 20)) {
        static float pv[3 * 16 * 16];
        static uint8_t u8[16 * 16 * 3];
        rs_siglip_preprocess(&img, 16, u8, pv, &err);
        rs_siglip_preprocess_with(&img, 16, RS_IMAGE_PROCESSOR_TORCHVISION, u8, pv, &err);
    }
    rs_image_free(&img);
    return 0;
}
