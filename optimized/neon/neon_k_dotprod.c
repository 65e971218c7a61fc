/* Placeholder: replaced by the real kernels. */
#include "kq_neon.h"

const kq_override_list kq_neon_k_dotprod_list = { NULL, 0 };
