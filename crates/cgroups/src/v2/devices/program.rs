//! Compiles device rules into a `BPF_PROG_TYPE_CGROUP_DEVICE` program.
//!
//! The kernel calls the program with a `struct bpf_cgroup_dev_ctx`:
//! `access_type` (u32: access bits << 16 | device type), `major` (u32), `minor` (u32). It returns
//! 1 to allow and 0 to deny.
//!
//! The program walks the rules from the last to the first (so the last matching rule wins) with
//! the requested access bits still undecided in `r6`. A matching deny rule that names an
//! undecided bit denies; a matching allow rule decides its bits, and allows once none is left.
//! When the rules run out with bits undecided, the request is denied. This is exactly
//! [`crate::devices::is_device_access_allowed`]; the tests run the program in a small
//! interpreter against that function.

use palisade_sys::bpf::Instruction;

use crate::devices::{DeviceKind, DeviceRule};

// Instruction classes, sizes, modes, operations and sources from `<linux/bpf_common.h>` and
// `<linux/bpf.h>`.
const CLASS_LDX: u8 = 0x01;
const CLASS_ALU32: u8 = 0x04;
const CLASS_JMP: u8 = 0x05;
const CLASS_ALU64: u8 = 0x07;
const SIZE_W: u8 = 0x00;
const MODE_MEM: u8 = 0x60;
const OP_AND: u8 = 0x50;
const OP_RSH: u8 = 0x70;
const OP_MOV: u8 = 0xb0;
const OP_JEQ: u8 = 0x10;
const OP_JNE: u8 = 0x50;
const OP_EXIT: u8 = 0x90;
const SOURCE_K: u8 = 0x00;
const SOURCE_X: u8 = 0x08;

/// Opcodes used by the program (public to the tests' interpreter).
pub(crate) const LOAD_WORD: u8 = CLASS_LDX | SIZE_W | MODE_MEM;
pub(crate) const MOV32_REGISTER: u8 = CLASS_ALU32 | OP_MOV | SOURCE_X;
pub(crate) const RSH32_IMMEDIATE: u8 = CLASS_ALU32 | OP_RSH | SOURCE_K;
pub(crate) const AND32_IMMEDIATE: u8 = CLASS_ALU32 | OP_AND | SOURCE_K;
pub(crate) const MOV64_IMMEDIATE: u8 = CLASS_ALU64 | OP_MOV | SOURCE_K;
pub(crate) const JUMP_IF_EQUAL: u8 = CLASS_JMP | OP_JEQ | SOURCE_K;
pub(crate) const JUMP_IF_NOT_EQUAL: u8 = CLASS_JMP | OP_JNE | SOURCE_K;
pub(crate) const EXIT: u8 = CLASS_JMP | OP_EXIT;

/// Registers: `r1` holds the context on entry, `r0` the verdict on exit.
const R0: u8 = 0;
const CONTEXT: u8 = 1;
const DEVICE_TYPE: u8 = 2;
const ACCESS: u8 = 3;
const MAJOR: u8 = 4;
const MINOR: u8 = 5;
const UNDECIDED: u8 = 6;
const SCRATCH: u8 = 7;

/// Offsets of the fields of `struct bpf_cgroup_dev_ctx`.
const ACCESS_TYPE_OFFSET: i16 = 0;
const MAJOR_OFFSET: i16 = 4;
const MINOR_OFFSET: i16 = 8;

/// `BPF_DEVCG_DEV_BLOCK` and `BPF_DEVCG_DEV_CHAR`.
const DEVICE_BLOCK: i32 = 1;
const DEVICE_CHAR: i32 = 2;

const VERDICT_DENY: i32 = 0;
const VERDICT_ALLOW: i32 = 1;

/// A run of instructions whose "skip" jumps all land just past its end.
#[derive(Debug, Default)]
struct Block {
    instructions: Vec<Instruction>,
    skips: Vec<usize>,
}

impl Block {
    fn push(&mut self, instruction: Instruction) {
        self.instructions.push(instruction);
    }

    /// `if register != value goto end-of-block`.
    fn skip_unless_equal(&mut self, register: u8, value: i32) {
        self.skips.push(self.instructions.len());
        self.push(Instruction::new(JUMP_IF_NOT_EQUAL, register, 0, 0, value));
    }

    /// `if register == value goto end-of-block`.
    fn skip_if_equal(&mut self, register: u8, value: i32) {
        self.skips.push(self.instructions.len());
        self.push(Instruction::new(JUMP_IF_EQUAL, register, 0, 0, value));
    }

    fn exit_with(&mut self, verdict: i32) {
        self.push(Instruction::new(MOV64_IMMEDIATE, R0, 0, 0, verdict));
        self.push(Instruction::new(EXIT, 0, 0, 0, 0));
    }

    /// Resolves the skips and appends the block to `program`.
    fn finish_into(mut self, program: &mut Vec<Instruction>) {
        let length = self.instructions.len();
        for index in self.skips {
            // A block holds at most a dozen instructions, so the offset always fits.
            let offset = i16::try_from(length - index - 1).unwrap_or(i16::MAX);
            self.instructions[index].offset = offset;
        }
        program.extend(self.instructions);
    }
}

/// Compiles `rules` (in OCI order) into the device program.
pub(crate) fn compile(rules: &[DeviceRule]) -> Vec<Instruction> {
    let mut program = vec![
        // r2 = ctx->access_type; r3 = r2 >> 16 (access bits); r2 &= 0xffff (device type)
        Instruction::new(LOAD_WORD, DEVICE_TYPE, CONTEXT, ACCESS_TYPE_OFFSET, 0),
        Instruction::new(MOV32_REGISTER, ACCESS, DEVICE_TYPE, 0, 0),
        Instruction::new(RSH32_IMMEDIATE, ACCESS, 0, 0, 16),
        Instruction::new(AND32_IMMEDIATE, DEVICE_TYPE, 0, 0, 0xffff),
        // r4 = ctx->major; r5 = ctx->minor
        Instruction::new(LOAD_WORD, MAJOR, CONTEXT, MAJOR_OFFSET, 0),
        Instruction::new(LOAD_WORD, MINOR, CONTEXT, MINOR_OFFSET, 0),
        // r6 = the access bits not yet decided
        Instruction::new(MOV32_REGISTER, UNDECIDED, ACCESS, 0, 0),
    ];
    // A request for no access at all is denied.
    let mut empty_request = Block::default();
    empty_request.skip_unless_equal(UNDECIDED, 0);
    empty_request.exit_with(VERDICT_DENY);
    empty_request.finish_into(&mut program);

    for rule in rules.iter().rev() {
        rule_block(rule).finish_into(&mut program);
    }
    // No rule decided every requested bit.
    program.push(Instruction::new(MOV64_IMMEDIATE, R0, 0, 0, VERDICT_DENY));
    program.push(Instruction::new(EXIT, 0, 0, 0, 0));
    program
}

fn rule_block(rule: &DeviceRule) -> Block {
    let mut block = Block::default();
    match rule.kind {
        DeviceKind::All => {}
        DeviceKind::Block => block.skip_unless_equal(DEVICE_TYPE, DEVICE_BLOCK),
        DeviceKind::Char => block.skip_unless_equal(DEVICE_TYPE, DEVICE_CHAR),
    }
    // Majors and minors are below 2^20 (checked when rules are built), so they fit an i32.
    if let Some(major) = rule.major.and_then(|major| i32::try_from(major).ok()) {
        block.skip_unless_equal(MAJOR, major);
    }
    if let Some(minor) = rule.minor.and_then(|minor| i32::try_from(minor).ok()) {
        block.skip_unless_equal(MINOR, minor);
    }
    let access = i32::from(rule.access.bits());
    if rule.allow {
        // r6 &= !access; if r6 == 0 allow
        block.push(Instruction::new(AND32_IMMEDIATE, UNDECIDED, 0, 0, !access));
        block.skip_unless_equal(UNDECIDED, 0);
        block.exit_with(VERDICT_ALLOW);
    } else {
        // if (r6 & access) != 0 deny
        block.push(Instruction::new(MOV32_REGISTER, SCRATCH, UNDECIDED, 0, 0));
        block.push(Instruction::new(AND32_IMMEDIATE, SCRATCH, 0, 0, access));
        block.skip_if_equal(SCRATCH, 0);
        block.exit_with(VERDICT_DENY);
    }
    block
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::tests::{default_container_rules, rule};
    use crate::devices::{is_device_access_allowed, DeviceAccess};

    /// Runs `program` the way the kernel would for one request, supporting exactly the
    /// instructions the compiler emits. Panics on anything the verifier would refuse that this
    /// subset can express: unknown opcodes, reads of unset registers, jumps out of bounds or
    /// backwards, running off the end.
    fn run(program: &[Instruction], access_type: u32, major: u32, minor: u32) -> u64 {
        let context: [u32; 3] = [access_type, major, minor];
        let mut registers: [Option<u64>; 11] = [None; 11];
        registers[usize::from(CONTEXT)] = Some(0);
        let read = |registers: &[Option<u64>; 11], register: u8| {
            registers[usize::from(register)].unwrap_or_else(|| panic!("r{register} read unset"))
        };
        let mut pc = 0usize;
        loop {
            let insn = program.get(pc).expect("ran off the end of the program");
            let destination = insn.destination();
            let immediate = insn.immediate;
            let mut next = pc + 1;
            match insn.code {
                LOAD_WORD => {
                    assert_eq!(insn.source(), CONTEXT, "loads only from the context");
                    let offset = usize::try_from(insn.offset).unwrap();
                    assert_eq!(offset % 4, 0);
                    registers[usize::from(destination)] = Some(u64::from(context[offset / 4]));
                }
                MOV32_REGISTER => {
                    let value = read(&registers, insn.source()) as u32;
                    registers[usize::from(destination)] = Some(u64::from(value));
                }
                RSH32_IMMEDIATE => {
                    let value = read(&registers, destination) as u32;
                    registers[usize::from(destination)] = Some(u64::from(value >> immediate));
                }
                AND32_IMMEDIATE => {
                    let value = read(&registers, destination) as u32;
                    registers[usize::from(destination)] = Some(u64::from(value & immediate as u32));
                }
                MOV64_IMMEDIATE => {
                    registers[usize::from(destination)] = Some(i64::from(immediate) as u64);
                }
                JUMP_IF_EQUAL | JUMP_IF_NOT_EQUAL => {
                    assert!(insn.offset >= 0, "backward jump");
                    let left = read(&registers, destination);
                    let right = i64::from(immediate) as u64;
                    let taken = (left == right) == (insn.code == JUMP_IF_EQUAL);
                    if taken {
                        next = pc + 1 + usize::try_from(insn.offset).unwrap();
                        assert!(next < program.len(), "jump out of the program");
                    }
                }
                EXIT => return read(&registers, R0),
                code => panic!("unexpected opcode {code:#04x}"),
            }
            pc = next;
        }
    }

    fn verdict(
        program: &[Instruction],
        kind: DeviceKind,
        major: u32,
        minor: u32,
        access: u8,
    ) -> bool {
        let device_type = match kind {
            DeviceKind::Block => 1,
            DeviceKind::Char => 2,
            DeviceKind::All => unreachable!(),
        };
        let result = run(
            program,
            (u32::from(access) << 16) | device_type,
            major,
            minor,
        );
        assert!(result <= 1, "verdict {result}");
        result == 1
    }

    /// A small deterministic generator (xorshift64) so the test needs no extra dependency.
    struct Generator(u64);

    impl Generator {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[(self.next() % items.len() as u64) as usize]
        }
    }

    const KINDS: [DeviceKind; 2] = [DeviceKind::Block, DeviceKind::Char];
    const MAJORS: [u32; 4] = [1, 8, 136, 7];
    const MINORS: [u32; 4] = [0, 3, 5, 9];

    fn agrees_everywhere(rules: &[DeviceRule]) {
        let program = compile(rules);
        for kind in KINDS {
            for major in MAJORS {
                for minor in MINORS {
                    for access in 0..=7u8 {
                        let expected = is_device_access_allowed(
                            rules,
                            kind,
                            major,
                            minor,
                            DeviceAccess::from_bits(access),
                        );
                        assert_eq!(
                            verdict(&program, kind, major, minor, access),
                            expected,
                            "rules {rules:?} request {kind:?} {major}:{minor} access {access}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn program_agrees_with_the_rule_semantics_on_random_rule_lists() {
        let mut generator = Generator(0x9e37_79b9_7f4a_7c15);
        for _ in 0..600 {
            let count = (generator.next() % 9) as usize;
            let rules: Vec<DeviceRule> = (0..count)
                .map(|_| DeviceRule {
                    allow: generator.next() % 2 == 0,
                    kind: generator.pick(&[DeviceKind::All, DeviceKind::Block, DeviceKind::Char]),
                    major: generator.pick(&[None, Some(1), Some(8), Some(136)]),
                    minor: generator.pick(&[None, Some(0), Some(3), Some(5)]),
                    access: DeviceAccess::from_bits((generator.next() % 8) as u8),
                })
                .collect();
            agrees_everywhere(&rules);
        }
    }

    #[test]
    fn program_for_default_rules_allows_null_and_denies_disks() {
        let rules = default_container_rules();
        agrees_everywhere(&rules);
        let program = compile(&rules);
        assert!(verdict(&program, DeviceKind::Char, 1, 3, 6));
        assert!(!verdict(&program, DeviceKind::Block, 8, 0, 2));
        assert!(verdict(&program, DeviceKind::Block, 8, 0, 1));
    }

    #[test]
    fn empty_rule_list_denies_everything() {
        let program = compile(&[]);
        assert!(!verdict(&program, DeviceKind::Char, 1, 3, 2));
        assert_eq!(program.len(), 7 + 3 + 2);
    }

    #[test]
    fn only_null_program_has_the_expected_shape() {
        let program = compile(&[rule(true, DeviceKind::Char, Some(1), Some(3), "rwm")]);
        // prologue (7), empty-request check (3), rule (type, major, minor, and, jne, mov, exit),
        // default deny (2)
        assert_eq!(program.len(), 7 + 3 + 7 + 2);
        let block = &program[10..17];
        assert_eq!(block[0], Instruction::new(JUMP_IF_NOT_EQUAL, 2, 0, 6, 2));
        assert_eq!(block[1], Instruction::new(JUMP_IF_NOT_EQUAL, 4, 0, 5, 1));
        assert_eq!(block[2], Instruction::new(JUMP_IF_NOT_EQUAL, 5, 0, 4, 3));
        assert_eq!(block[3], Instruction::new(AND32_IMMEDIATE, 6, 0, 0, !7));
        assert_eq!(block[6], Instruction::new(EXIT, 0, 0, 0, 0));
        assert_eq!(program.last(), Some(&Instruction::new(EXIT, 0, 0, 0, 0)));
    }
}
