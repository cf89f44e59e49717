/* The sampler's side of sampling on the device (backend.h: the sample op): the engine
 * asks each request's sampler for its row's rule instead of handing it logits. */
#ifndef GALE_ENGINE_SAMPLER_H
#define GALE_ENGINE_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "gale.h"

/* row = the sampler's parameters, its draw counter and, when a penalty applies, the
 * distinct ids of history[n] with their counts — in the sampler's buffers, valid until its
 * next call. The counter moves on only with sampler_drew, once the draw was made: a step
 * that failed and is run again draws what it would have. */
gale_status sampler_device_row(gale_sampler *s, const int32_t *history, size_t n, sample_row *row);
void sampler_drew(gale_sampler *s);

/* the vocabulary the sampler was made for */
int sampler_vocab(const gale_sampler *s);

#endif
