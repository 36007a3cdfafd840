/* Board support of the C firmware on QEMU mps2-an386: output and exit over semihosting, an
 * instruction counter on SysTick, and the painted stack's high-water mark. */
#ifndef BOARD_H
#define BOARD_H

#include <stddef.h>
#include <stdint.h>

/* Write a NUL-terminated string to the host's console. */
void board_print(const char *s);
/* End the emulation: QEMU exits with status 0 (success) or 1. */
void board_exit(int success) __attribute__((noreturn));
/* Start SysTick on the core clock, full 24-bit period, interrupt at every wrap. */
void board_clock_start(void);
/* Guest instructions since board_clock_start: under -icount shift=0 one instruction takes
 * 1 ns of virtual time, and MPS2's 25 MHz core clock ticks every 40 instructions. */
uint64_t board_instructions(void);

typedef struct {
    size_t peak; /* bytes between the top of RAM and the deepest word written */
    size_t size; /* bytes from the end of static RAM to the top of RAM */
} board_stack;
/* How much of the stack has been used since reset (the reset handler paints it). */
board_stack board_stack_usage(void);

#endif
