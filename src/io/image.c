/* JPEG and PNG decoding to 8-bit RGB, byte-for-byte what Pillow's
 * Image.open(p).convert("RGB") produces (verified against Pillow on every image in
 * shared/data, see docs/images.md):
 *  - JPEG: libjpeg defaults as Pillow uses them (JDCT_ISLOW, fancy upsampling); 1
 *    component -> gray replicated; 4 components -> Adobe inverted CMYK (Pillow's
 *    "CMYK;I" rawmode) then Pillow's cmyk2rgb. libjpeg warnings about corrupt data are
 *    ignored as Pillow ignores them, but running out of data (JWRN_JPEG_EOF) is an error,
 *    as Pillow raises "image file is truncated".
 *  - PNG: no gamma/ICC handling (Pillow applies none); 1/2/4-bit gray scaled by bit
 *    replication; palette looked up; 16-bit RGB(A) and gray+alpha keep the high byte;
 *    16-bit gray (Pillow mode I;16) is clamped to 255, not scaled, as Pillow does.
 * Invariant: every libjpeg/libpng error longjmps back here, so corrupt data never aborts. */
#include "reprshift/image.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "reprshift/fileio.h"

static int check_dims(long long w, long long h, const char *name, rs_err *err) {
    if (w <= 0 || h <= 0)
        return rs_errk(err, RS_EFORMAT, "%s: image has zero size (%lldx%lld)", name, w, h);
    if (w > RS_IMAGE_MAX_SIDE || h > RS_IMAGE_MAX_SIDE ||
        (unsigned long long)w * (unsigned long long)h > RS_IMAGE_MAX_PIXELS)
        return rs_errk(err, RS_EFORMAT, "%s: image is %lldx%lld, above the limit of %d per side and %llu pixels",
                       name, w, h, RS_IMAGE_MAX_SIDE, (unsigned long long)RS_IMAGE_MAX_PIXELS);
    return 0;
}

int rs_image_alloc(rs_image *img, int w, int h, rs_err *err) {
    img->w = img->h = 0;
    img->rgb = NULL;
    if (check_dims(w, h, "image", err)) return -1;
    size_t n = (size_t)w * (size_t)h * 3;
    img->rgb = malloc(n);
    if (!img->rgb) return rs_errk(err, RS_ENOMEM, "out of memory allocating a %dx%d image", w, h);
    img->w = w;
    img->h = h;
    return 0;
}

void rs_image_free(rs_image *img) {
    if (!img) return;
    free(img->rgb);
    img->rgb = NULL;
    img->w = img->h = 0;
}

int rs_image_copy(rs_image *dst, const rs_image *src, rs_err *err) {
    if (rs_image_alloc(dst, src->w, src->h, err)) return -1;
    memcpy(dst->rgb, src->rgb, (size_t)src->w * src->h * 3);
    return 0;
}

/* ---------------------------------------------------------------- JPEG */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jmp;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err_ctx;

static void jpeg_error_exit(j_common_ptr cinfo) {
    jpeg_err_ctx *e = (jpeg_err_ctx *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jmp, 1);
}

/* Warnings (level -1) about corrupt data are ignored like Pillow does, except running out
 * of input: libjpeg would pad with a fake EOI and return a gray-filled image, where Pillow
 * raises "image file is truncated". Trace messages (level >= 0) are dropped. */
static void jpeg_emit_message(j_common_ptr cinfo, int msg_level) {
    jpeg_err_ctx *e = (jpeg_err_ctx *)cinfo->err;
    if (msg_level == -1 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        snprintf(e->msg, sizeof e->msg, "image file is truncated (premature end of JPEG data)");
        longjmp(e->jmp, 1);
    }
}

static int decode_jpeg(const uint8_t *data, size_t len, const char *name, rs_image *img,
                       rs_err *err) {
    struct jpeg_decompress_struct cinfo;
    jpeg_err_ctx jerr;
    /* volatile: modified between setjmp and a possible longjmp */
    uint8_t *volatile rgb = NULL;
    uint8_t *volatile row = NULL;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = jpeg_error_exit;
    jerr.pub.emit_message = jpeg_emit_message;
    jerr.msg[0] = 0;
    if (setjmp(jerr.jmp)) {
        jpeg_destroy_decompress(&cinfo);
        free(rgb);
        free(row);
        return rs_errk(err, RS_EFORMAT, "%s: cannot decode JPEG: %s", name, jerr.msg);
    }
    jpeg_create_decompress(&cinfo);
    /* Bound libjpeg's own allocations (progressive coefficient buffers etc.). */
    cinfo.mem->max_memory_to_use = 4L * 1024 * 1024 * 1024;
    jpeg_mem_src(&cinfo, (const unsigned char *)data, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    if (check_dims(cinfo.image_width, cinfo.image_height, name, err)) {
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    int nc = cinfo.num_components;
    if (nc == 1) {
        cinfo.out_color_space = JCS_GRAYSCALE;
    } else if (nc == 3) {
        cinfo.out_color_space = JCS_RGB;
    } else if (nc == 4) {
        cinfo.out_color_space = JCS_CMYK; /* libjpeg converts YCCK to CMYK */
    } else {
        jpeg_destroy_decompress(&cinfo);
        return rs_errk(err, RS_EFORMAT, "%s: unsupported JPEG with %d components", name, nc);
    }
    jpeg_start_decompress(&cinfo);
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height;
    int oc = cinfo.output_components;
    rgb = malloc((size_t)w * h * 3);
    row = malloc((size_t)w * oc);
    if (!rgb || !row) {
        jpeg_destroy_decompress(&cinfo);
        free(rgb);
        free(row);
        return rs_errk(err, RS_ENOMEM, "%s: out of memory for a %dx%d image", name, w, h);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        int y = (int)cinfo.output_scanline;
        JSAMPROW rp = row;
        if (jpeg_read_scanlines(&cinfo, &rp, 1) != 1) continue;
        uint8_t *o = rgb + (size_t)y * w * 3;
        if (oc == 1) {
            for (int x = 0; x < w; x++) o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = row[x];
        } else if (oc == 3) {
            memcpy(o, row, (size_t)w * 3);
        } else {
            /* Pillow: unpack "CMYK;I" (invert: Adobe stores inverted CMYK), then cmyk2rgb:
             * out = clip(nk - muldiv255(c, nk)) with nk = 255 - k. */
            for (int x = 0; x < w; x++) {
                const uint8_t *p = row + 4 * x;
                int nk = p[3]; /* 255 - (255 - stored k) */
                for (int c = 0; c < 3; c++) {
                    int cv = 255 - p[c];
                    int t = cv * nk + 128;
                    int v = nk - (((t >> 8) + t) >> 8);
                    o[3 * x + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
            }
        }
    }
    /* Not jpeg_finish_decompress: like Pillow, a baseline file whose scan data is complete
     * but lacks the final EOI marker still decodes. */
    jpeg_destroy_decompress(&cinfo);
    free(row);
    img->w = w;
    img->h = h;
    img->rgb = rgb;
    return 0;
}

/* ---------------------------------------------------------------- PNG */

typedef struct {
    const uint8_t *data;
    size_t len, pos;
    jmp_buf jmp;
    char msg[256];
    volatile int oom; /* the error was an allocation of ours that failed */
} png_ctx;

static void png_err_fn(png_structp png, png_const_charp msg) {
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    longjmp(c->jmp, 1);
}

static void png_warn_fn(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static void png_read_fn(png_structp png, png_bytep out, png_size_t n) {
    png_ctx *c = png_get_io_ptr(png);
    if (n > c->len - c->pos) png_error(png, "image file is truncated (premature end of PNG data)");
    memcpy(out, c->data + c->pos, n);
    c->pos += n;
}

static int decode_png(const uint8_t *data, size_t len, const char *name, rs_image *img,
                      rs_err *err) {
    /* Check the IHDR size ourselves first: clearer messages than libpng's "Invalid IHDR
     * data", and nothing is allocated for a zero-size or oversized image. */
    if (len >= 24 && !memcmp(data + 12, "IHDR", 4)) {
        unsigned long long w = (unsigned long long)data[16] << 24 | data[17] << 16 | data[18] << 8 | data[19];
        unsigned long long h = (unsigned long long)data[20] << 24 | data[21] << 16 | data[22] << 8 | data[23];
        if (check_dims((long long)w, (long long)h, name, err)) return -1;
    }
    png_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.data = data;
    ctx.len = len;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_err_fn, png_warn_fn);
    if (!png) return rs_errk(err, RS_ENOMEM, "%s: cannot create PNG reader", name);
    png_infop info = png_create_info_struct(png);
    uint8_t *volatile raw = NULL;
    png_bytep *volatile rows = NULL;
    uint8_t *volatile rgb = NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return rs_errk(err, RS_ENOMEM, "%s: cannot create PNG reader", name);
    }
    if (setjmp(ctx.jmp)) {
        png_destroy_read_struct(&png, &info, NULL);
        free(raw);
        free(rows);
        free(rgb);
        return rs_errk(err, ctx.oom ? RS_ENOMEM : RS_EFORMAT, "%s: cannot decode PNG: %s", name, ctx.msg);
    }
    png_set_read_fn(png, &ctx, png_read_fn);
    /* libpng rejects larger headers itself, before we allocate. */
    png_set_user_limits(png, RS_IMAGE_MAX_SIDE, RS_IMAGE_MAX_SIDE);
    png_set_chunk_malloc_max(png, 64u * 1024 * 1024);
    png_read_info(png, info);
    png_uint_32 w32, h32;
    int depth, ctype, interlace;
    png_get_IHDR(png, info, &w32, &h32, &depth, &ctype, &interlace, NULL, NULL);
    if (check_dims(w32, h32, name, err)) {
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    if (depth < 8) png_set_packing(png); /* one byte per sample, values not scaled */
    if (interlace != PNG_INTERLACE_NONE) png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t w = w32, h = h32;
    size_t rowbytes = png_get_rowbytes(png, info);
    int ch = png_get_channels(png, info);
    raw = malloc(rowbytes * h);
    rows = malloc(h * sizeof *rows);
    rgb = malloc(w * h * 3);
    if (!raw || !rows || !rgb) {
        ctx.oom = 1;
        png_error(png, "out of memory");
    }
    for (size_t y = 0; y < h; y++) rows[y] = raw + y * rowbytes;
    png_read_image(png, rows);
    /* Not png_read_end: Pillow stops after the image data too. */

    uint8_t pal[256][3];
    memset(pal, 0, sizeof pal); /* indices past the palette read as black */
    if (ctype == PNG_COLOR_TYPE_PALETTE) {
        png_colorp p;
        int np = 0;
        if (!png_get_PLTE(png, info, &p, &np)) png_error(png, "palette image without PLTE");
        for (int i = 0; i < np && i < 256; i++) {
            pal[i][0] = p[i].red;
            pal[i][1] = p[i].green;
            pal[i][2] = p[i].blue;
        }
    }
    int bps = depth == 16 ? 2 : 1; /* bytes per sample after packing */
    for (size_t y = 0; y < h; y++) {
        const uint8_t *r = raw + y * rowbytes;
        uint8_t *o = rgb + y * w * 3;
        for (size_t x = 0; x < w; x++, o += 3) {
            const uint8_t *p = r + x * ch * bps; /* 16-bit samples are big endian */
            switch (ctype) {
            case PNG_COLOR_TYPE_GRAY: {
                int v;
                if (depth == 16) {
                    unsigned v16 = (unsigned)p[0] << 8 | p[1];
                    v = v16 > 255 ? 255 : (int)v16; /* Pillow I;16 -> RGB clamps */
                } else if (depth == 8) {
                    v = p[0];
                } else if (depth == 4) {
                    v = p[0] * 17;
                } else if (depth == 2) {
                    v = p[0] * 85;
                } else {
                    v = p[0] ? 255 : 0;
                }
                o[0] = o[1] = o[2] = (uint8_t)v;
                break;
            }
            case PNG_COLOR_TYPE_GRAY_ALPHA:
                o[0] = o[1] = o[2] = p[0]; /* high byte when 16-bit */
                break;
            case PNG_COLOR_TYPE_PALETTE:
                memcpy(o, pal[p[0]], 3);
                break;
            default: /* RGB, RGBA: high byte when 16-bit, alpha dropped */
                o[0] = p[0];
                o[1] = p[bps];
                o[2] = p[2 * bps];
                break;
            }
        }
    }
    png_destroy_read_struct(&png, &info, NULL);
    free(raw);
    free(rows);
    img->w = (int)w;
    img->h = (int)h;
    img->rgb = rgb;
    return 0;
}

int rs_image_decode(const uint8_t *data, size_t len, const char *name, rs_image *img,
                    rs_err *err) {
    img->w = img->h = 0;
    img->rgb = NULL;
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len == 0) return rs_errk(err, RS_EFORMAT, "%s: empty file, not an image", name);
    if (len >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF)
        return decode_jpeg(data, len, name, img, err);
    if (len >= 8 && !memcmp(data, png_sig, 8)) return decode_png(data, len, name, img, err);
    return rs_errk(err, RS_EFORMAT, "%s: unsupported image format (only JPEG and PNG are read)", name);
}

int rs_image_load(const char *path, rs_image *img, rs_err *err) {
    img->w = img->h = 0;
    img->rgb = NULL;
    char *buf = NULL;
    size_t len = 0;
    if (rs_read_file(path, RS_IMAGE_MAX_FILE_BYTES, &buf, &len, err)) return -1;
    int rc = rs_image_decode((const uint8_t *)buf, len, path, img, err);
    free(buf);
    return rc;
}
