//! A WASI command component with no `weir:plugin` exports at all: the host must refuse it
//! as "not a Weir plugin" rather than fail while linking or calling it.

fn main() {
    println!("hello from a component that is not a Weir plugin");
}
