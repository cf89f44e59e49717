/* placeholder: written with its issue */
#include <criterion/criterion.h>

#include "cuda_test_support.h"

Test(placeholder, skipped) { require_cuda(); }
