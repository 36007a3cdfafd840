//! Output, failure, and the panic handler through semihosting: the firmware's
//! lines reach QEMU's (or the debugger's) standard output, and its end becomes their exit status.

/// Print a line through semihosting (`format!` syntax).
#[cfg(cortex_m)]
pub use cortex_m_semihosting::hprintln as println;
/// Print a line through semihosting (`format!` syntax).
#[cfg(riscv32)]
pub use riscv_semihosting::hprintln as println;

/// Print `error: {why}` and end with exit status 1.
pub fn fail(why: core::fmt::Arguments<'_>) -> ! {
    println!("error: {}", why);
    crate::exit(false)
}

/// Run [`crate::kernel_check`] in `scratch` and print `kernel_check=ok`, or end with failure.
pub fn check_kernels(scratch: &mut [f32]) {
    if let Err(e) = crate::kernel_check(scratch) {
        fail(format_args!("kernel check: {e}"));
    }
    println!("kernel_check=ok");
}

/// Run [`crate::conv_kernel_check`] in `scratch` and print `conv_kernel_check=ok`, or end with
/// failure.
pub fn check_conv_kernels(scratch: &mut [f32]) {
    if let Err(e) = crate::conv_kernel_check(scratch) {
        fail(format_args!("convolution kernel check: {e}"));
    }
    println!("conv_kernel_check=ok");
}

/// Print the stack's high-water mark (`peak_stack=`, `stack_available=`), or end with failure
/// when the stack used all of it.
pub fn check_stack() -> crate::stack::StackUsage {
    let stack = crate::stack::usage();
    println!("peak_stack={}", stack.peak);
    println!("stack_available={}", stack.size);
    if stack.exhausted() {
        fail(format_args!(
            "the stack used all {} bytes left in RAM",
            stack.size
        ));
    }
    stack
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    fail(format_args!("panic: {info}"))
}
