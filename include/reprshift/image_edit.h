/* Controlled image edits applied in memory to an 8-bit RGB image before preprocessing
 * (no re-encoding). Each follows a Pillow operation operation-for-operation, so the
 * bytes equal Pillow's (see docs/images.md for measured differences):
 *   brightness  f: ImageEnhance.Brightness(im).enhance(f)   (blend with black)
 *   contrast    f: ImageEnhance.Contrast(im).enhance(f)     (blend with the mean of L)
 *   saturation  f: ImageEnhance.Color(im).enhance(f)        (blend with L as RGB)
 *   blur        r: im.filter(ImageFilter.GaussianBlur(r))   (3 extended box blurs)
 *   rotate      a: im.rotate(a, resample=BICUBIC)           (degrees counter-clockwise,
 *                  same size, black fill)
 * and two edits of our own (no Pillow equivalent; reference in numpy):
 *   redness       f: R' = clamp(floor(R·f + 0.5)), then G' = clamp(floor(G - d + 0.5)),
 *                   B' likewise, with d = 0.299 (R' - R) / 0.701, so BT.601 luma
 *                   0.299R + 0.587G + 0.114B (of the gamma-encoded values) is unchanged up
 *                   to rounding (unless G or B clip). The default, luminance-controlled
 *                   redness; "redness_luma" (its old name) is accepted as an alias.
 *   redness_plain f: R' as above, G and B unchanged (brightness changes with it). */
#ifndef REPRSHIFT_IMAGE_EDIT_H
#define REPRSHIFT_IMAGE_EDIT_H

#include "reprshift/error.h"
#include "reprshift/image.h"

typedef enum {
    RS_EDIT_BRIGHTNESS,
    RS_EDIT_CONTRAST,
    RS_EDIT_SATURATION,
    RS_EDIT_REDNESS,       /* luminance-controlled (BT.601 luma kept) */
    RS_EDIT_REDNESS_PLAIN, /* R scaled only */
    RS_EDIT_BLUR,
    RS_EDIT_ROTATE,
    RS_EDIT_COUNT
} rs_edit_kind;

typedef struct {
    rs_edit_kind kind;
    double value;
} rs_edit;

/* The edit's name as used in "name=value" ("brightness", "redness_plain", ...). */
const char *rs_edit_name(rs_edit_kind kind);
/* Parse "name=value" ("redness_luma" parses as RS_EDIT_REDNESS); unknown names and bad or out-of-range values are errors that list
 * the valid names. */
int rs_edit_parse(const char *spec, rs_edit *out, rs_err *err);
/* Apply one edit in place (img->rgb may be replaced). */
int rs_edit_apply(rs_image *img, const rs_edit *e, rs_err *err);
/* Apply n edits in order, in place. */
int rs_edits_apply(rs_image *img, const rs_edit *edits, int n, rs_err *err);

/* Individual operations (in place unless noted). */
void rs_image_brightness(rs_image *img, double factor);
void rs_image_contrast(rs_image *img, double factor);
void rs_image_saturation(rs_image *img, double factor);
/* redness_plain */
void rs_image_redness_plain(rs_image *img, double factor);
/* redness (luminance-controlled) */
void rs_image_redness_luma(rs_image *img, double factor);
/* Pillow GaussianBlur(radius); radius >= 0. */
int rs_image_gaussian_blur(rs_image *img, double radius, rs_err *err);
/* Pillow rotate(angle, BICUBIC, expand=False): dst is a new image of src's size. */
int rs_image_rotate(const rs_image *src, double angle_deg, rs_image *dst, rs_err *err);

/* Mean luminance of an 8-bit sRGB image, two ways:
 *   luma_bt601: mean of 0.299R + 0.587G + 0.114B on the gamma-encoded 0..255 values, / 255;
 *   linear_y:   mean of 0.2126 R_lin + 0.7152 G_lin + 0.0722 B_lin (linear-light relative
 *               luminance), with the sRGB EOTF c' = c/255 <= 0.04045 ? c'/12.92
 *               : ((c' + 0.055)/1.055)^2.4.
 * Both in [0, 1]. */
typedef struct {
    double luma_bt601;
    double linear_y;
} rs_luminance;
int rs_image_luminance(const rs_image *img, rs_luminance *out, rs_err *err);

#endif
