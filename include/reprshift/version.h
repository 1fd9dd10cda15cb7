/* Tool version, recorded in every output's provenance. */
#ifndef REPRSHIFT_VERSION_H
#define REPRSHIFT_VERSION_H
#define RS_VERSION "0.1.0"
#endif
