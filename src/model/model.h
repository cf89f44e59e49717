/* Inside view of a loaded model for the engine and tests (gale_model is opaque in gale.h). */
#ifndef GALE_MODEL_MODEL_H
#define GALE_MODEL_MODEL_H

#include "gale.h"
#include "model/tensor_table.h"
#include "model/weights.h"

const model_weights *model_get_weights(const gale_model *model);
const tensor_table *model_get_tensor_table(const gale_model *model);

#endif
