#ifndef FERRY_CSECCOMP_SHIM_H
#define FERRY_CSECCOMP_SHIM_H
#include <seccomp.h>
#include <errno.h>

/* SCMP_ACT_ERRNO is a function-like macro, which Swift cannot import. */
static inline uint32_t ferry_scmp_act_errno(uint16_t code) { return SCMP_ACT_ERRNO(code); }
static inline uint32_t ferry_scmp_act_allow(void) { return SCMP_ACT_ALLOW; }
static inline uint32_t ferry_scmp_act_kill_process(void) { return SCMP_ACT_KILL_PROCESS; }

/* One masked-equality comparison of a system call argument: (arg & mask) == value. */
static inline struct scmp_arg_cmp ferry_scmp_masked_eq(unsigned int arg, uint64_t mask, uint64_t value) {
    struct scmp_arg_cmp cmp = { arg, SCMP_CMP_MASKED_EQ, mask, value };
    return cmp;
}

/* Equality of a system call argument. */
static inline struct scmp_arg_cmp ferry_scmp_eq(unsigned int arg, uint64_t value) {
    struct scmp_arg_cmp cmp = { arg, SCMP_CMP_EQ, value, 0 };
    return cmp;
}
#endif
