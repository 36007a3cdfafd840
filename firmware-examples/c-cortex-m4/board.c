/* Board support of the C firmware on QEMU mps2-an386 (see board.h): the vector table, the
 * reset handler (FPU on, .data and .bss set up, stack painted, main), SysTick and fault
 * handlers, semihosting. */
#include "board.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _stack_top;
int main(void);

#define STACK_PAINT 0xCCCCCCCCu
#define REG(addr) (*(volatile uint32_t *)(addr))
#define SCB_CPACR REG(0xE000ED88u)
#define SCB_ICSR REG(0xE000ED04u)
#define SYST_CSR REG(0xE000E010u)
#define SYST_RVR REG(0xE000E014u)
#define SYST_CVR REG(0xE000E018u)
#define SYST_RELOAD 0x00FFFFFFu
#define ICSR_PENDSTSET (1u << 26)
#define INSTRUCTIONS_PER_TICK 40u

/* ARM semihosting, as QEMU implements it: operation in r0, argument in r1. */
static int semihost(int op, const void *arg) {
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void board_print(const char *s) {
    semihost(0x04 /* SYS_WRITE0 */, s);
}

void board_exit(int success) {
    /* SYS_EXIT with ADP_Stopped_ApplicationExit (status 0) or RunTimeErrorUnknown (1). */
    semihost(0x18, (const void *)(success ? 0x20026u : 0x20023u));
    for (;;) {
        __asm__ volatile("wfi");
    }
}

static volatile uint32_t wraps;

void SysTick_Handler(void) {
    wraps = wraps + 1;
}

void board_clock_start(void) {
    SYST_CSR = 0;
    SYST_RVR = SYST_RELOAD;
    SYST_CVR = 0;
    SYST_CSR = 0x7; /* core clock, interrupt, enable */
}

uint64_t board_instructions(void) {
    for (;;) {
        uint32_t w1 = wraps;
        uint32_t p1 = SCB_ICSR & ICSR_PENDSTSET;
        uint32_t v = SYST_CVR;
        uint32_t p2 = SCB_ICSR & ICSR_PENDSTSET;
        uint32_t w2 = wraps;
        /* Unchanged wrap count and pending bit around the read: `v` belongs to period w1
         * (+1 when a wrap is pending but not yet handled). */
        if (w1 == w2 && p1 == p2) {
            uint64_t periods = (uint64_t)w1 + (p1 != 0);
            uint64_t ticks = periods * ((uint64_t)SYST_RELOAD + 1) + (SYST_RELOAD - v);
            return ticks * INSTRUCTIONS_PER_TICK;
        }
    }
}

board_stack board_stack_usage(void) {
    const uint32_t *bottom = &_ebss, *top = &_stack_top;
    const volatile uint32_t *p = bottom;
    while (p < top && *p == STACK_PAINT) {
        p++;
    }
    board_stack s = {(size_t)((const uint8_t *)top - (const uint8_t *)p),
                     (size_t)((const uint8_t *)top - (const uint8_t *)bottom)};
    return s;
}

static void print_hex(const char *what, uint32_t v) {
    char text[40];
    const char *digits = "0123456789abcdef";
    size_t n = 0;
    while (what[n] != 0 && n < 24) {
        text[n] = what[n];
        n++;
    }
    text[n++] = '0';
    text[n++] = 'x';
    for (int i = 7; i >= 0; i--) {
        text[n++] = digits[(v >> (4 * i)) & 0xF];
    }
    text[n++] = '\n';
    text[n] = 0;
    board_print(text);
}

/* A fault (a bug, or the library's undefined-instruction stop on a panic) ends the run. */
void HardFault_Handler(void) __attribute__((naked));
void HardFault_Handler(void) {
    __asm__ volatile("tst lr, #4\n"
                     "ite eq\n"
                     "mrseq r0, msp\n"
                     "mrsne r0, psp\n"
                     "b hard_fault\n");
}

void hard_fault(const uint32_t *frame) __attribute__((used, noreturn));
void hard_fault(const uint32_t *frame) {
    print_hex("error: hard fault at pc ", frame[6]);
    board_exit(0);
}

static void default_handler(void) {
    board_print("error: unexpected exception\n");
    board_exit(0);
}

void Reset_Handler(void) __attribute__((noreturn));
void Reset_Handler(void) {
    /* Full access to the FPU (CP10 and CP11) before any floating-point instruction. */
    SCB_CPACR |= 0xFu << 20;
    __asm__ volatile("dsb\n isb" ::: "memory");
    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata) {
        *dst++ = *src++;
    }
    for (dst = &_sbss; dst < &_ebss; dst++) {
        *dst = 0;
    }
    /* Paint the stack from the end of static RAM to just below this frame. */
    uint32_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (volatile uint32_t *p = &_ebss; (uint32_t)p < sp - 64; p++) {
        *p = STACK_PAINT;
    }
    board_exit(main() == 0);
}

typedef void (*vector)(void);
__attribute__((section(".vectors"), used)) static const vector vectors[16] = {
    (vector)(uintptr_t)&_stack_top, /* initial stack pointer */
    Reset_Handler,
    default_handler, /* NMI */
    HardFault_Handler,
    HardFault_Handler, /* MemManage */
    HardFault_Handler, /* BusFault */
    HardFault_Handler, /* UsageFault */
    0,
    0,
    0,
    0,
    default_handler, /* SVCall */
    default_handler, /* DebugMonitor */
    0,
    default_handler, /* PendSV */
    SysTick_Handler,
};
