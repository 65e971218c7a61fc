/* Placeholder: replaced by the real kernels. */
#include "kq_neon.h"

const kq_override_list kq_neon_q32_dot_list = { NULL, 0 };
