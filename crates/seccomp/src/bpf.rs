//! Classic BPF as seccomp runs it: the instruction type, and a small assembler with labels.
//!
//! Classic BPF has only forward jumps, and a conditional jump has two 8-bit offsets, so it can
//! skip at most 255 instructions. The assembler lets the compiler jump to any label it binds
//! later; when a conditional target ends up too far away, it routes that branch through an
//! unconditional `ja` (32-bit offset) placed right after the jump, and repeats the layout until
//! every offset fits. The compiler therefore never has to think about distances.

/// One classic-BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Instruction {
    /// Opcode: class, size, mode or operation, source.
    pub code: u16,
    /// Instructions to skip when a conditional jump's condition holds.
    pub jt: u8,
    /// Instructions to skip when it does not.
    pub jf: u8,
    /// The constant operand: a load offset, a comparison value, a return value, a jump length.
    pub k: u32,
}

impl Instruction {
    /// The instruction in the layout the kernel takes.
    pub fn to_sock_filter(self) -> libc::sock_filter {
        libc::sock_filter {
            code: self.code,
            jt: self.jt,
            jf: self.jf,
            k: self.k,
        }
    }
}

/// `BPF_LD | BPF_W | BPF_ABS`: load the 32-bit word at offset `k` of `struct seccomp_data`.
pub(crate) const LD_W_ABS: u16 = 0x20;
/// `BPF_ALU | BPF_AND | BPF_K`: `A &= k`.
pub(crate) const ALU_AND_K: u16 = 0x54;
/// `BPF_JMP | BPF_JA`: skip `k` instructions.
pub(crate) const JMP_JA: u16 = 0x05;
/// `BPF_JMP | BPF_JEQ | BPF_K`: `A == k`.
pub(crate) const JMP_JEQ_K: u16 = 0x15;
/// `BPF_JMP | BPF_JGT | BPF_K`: `A > k` (unsigned).
pub(crate) const JMP_JGT_K: u16 = 0x25;
/// `BPF_JMP | BPF_JGE | BPF_K`: `A >= k` (unsigned).
pub(crate) const JMP_JGE_K: u16 = 0x35;
/// `BPF_RET | BPF_K`: return `k`.
pub(crate) const RET_K: u16 = 0x06;

/// Offsets into `struct seccomp_data` (little-endian: the low word of an argument comes first).
pub(crate) mod data {
    /// `nr`: the system call number.
    pub(crate) const NR: u32 = 0;
    /// `arch`: the `AUDIT_ARCH_*` value.
    pub(crate) const ARCH: u32 = 4;
    /// Start of `args[6]`, eight bytes each.
    const ARGS: u32 = 16;

    /// The low 32 bits of argument `index` (0..=5).
    pub(crate) const fn arg_low(index: u8) -> u32 {
        ARGS + 8 * index as u32
    }

    /// The high 32 bits of argument `index` (0..=5).
    pub(crate) const fn arg_high(index: u8) -> u32 {
        ARGS + 8 * index as u32 + 4
    }
}

/// A place in the program that jumps can target; bound once with [`Assembler::bind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Label(usize);

/// Where a branch of a conditional jump goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The instruction emitted right after the jump.
    Next,
    /// A label bound later in the program.
    Label(Label),
}

/// A conditional jump's comparison against the accumulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comparison {
    /// `A == k`.
    Equal,
    /// `A > k`, unsigned.
    Greater,
    /// `A >= k`, unsigned.
    GreaterOrEqual,
}

impl Comparison {
    fn code(self) -> u16 {
        match self {
            Self::Equal => JMP_JEQ_K,
            Self::Greater => JMP_JGT_K,
            Self::GreaterOrEqual => JMP_JGE_K,
        }
    }
}

/// Errors that can only come from a bug in the compiler that drives the assembler.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssembleError {
    /// A jump targets a label that was never bound.
    #[error("jump to a label that is never bound")]
    UnboundLabel,
    /// A label was bound twice.
    #[error("label bound twice")]
    LabelBoundTwice,
    /// A jump targets a label bound before it; classic BPF jumps only forward.
    #[error("backward jump: classic BPF only jumps forward")]
    BackwardJump,
    /// The program is too long for 32-bit jump offsets.
    #[error("program too long to address")]
    TooLong,
}

#[derive(Debug, Clone)]
enum Item {
    Statement {
        code: u16,
        k: u32,
    },
    Jump {
        code: u16,
        k: u32,
        jt: Target,
        jf: Target,
        /// The true branch goes through a `ja` placed right after the jump.
        long_jt: bool,
        /// The false branch goes through a `ja` placed after the jump (and after the true
        /// branch's `ja`, if any).
        long_jf: bool,
    },
    Bind(Label),
}

impl Item {
    fn len(&self) -> usize {
        match self {
            Item::Statement { .. } => 1,
            Item::Jump {
                long_jt, long_jf, ..
            } => 1 + usize::from(*long_jt) + usize::from(*long_jf),
            Item::Bind(_) => 0,
        }
    }
}

/// Builds a classic-BPF program from statements, jumps and labels.
#[derive(Debug, Default)]
pub(crate) struct Assembler {
    items: Vec<Item>,
    labels: usize,
}

impl Assembler {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A fresh, unbound label.
    pub(crate) fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }

    /// Makes `label` refer to the next instruction emitted.
    pub(crate) fn bind(&mut self, label: Label) {
        self.items.push(Item::Bind(label));
    }

    /// `A = seccomp_data[offset]` (32 bits).
    pub(crate) fn load(&mut self, offset: u32) {
        self.items.push(Item::Statement {
            code: LD_W_ABS,
            k: offset,
        });
    }

    /// `A &= mask`.
    pub(crate) fn and(&mut self, mask: u32) {
        self.items.push(Item::Statement {
            code: ALU_AND_K,
            k: mask,
        });
    }

    /// Returns `value` (a seccomp action) from the filter.
    pub(crate) fn ret(&mut self, value: u32) {
        self.items.push(Item::Statement {
            code: RET_K,
            k: value,
        });
    }

    /// Jumps to `jt` if `A <comparison> k`, to `jf` otherwise.
    pub(crate) fn jump(&mut self, comparison: Comparison, k: u32, jt: Target, jf: Target) {
        self.items.push(Item::Jump {
            code: comparison.code(),
            k,
            jt,
            jf,
            long_jt: false,
            long_jf: false,
        });
    }

    /// Lays the program out: the start of every item and the position of every label.
    fn layout(&self) -> Result<(Vec<usize>, Vec<usize>), AssembleError> {
        let mut starts = Vec::with_capacity(self.items.len() + 1);
        let mut labels = vec![usize::MAX; self.labels];
        let mut position = 0usize;
        for item in &self.items {
            starts.push(position);
            if let Item::Bind(Label(label)) = item {
                let slot = labels.get_mut(*label).ok_or(AssembleError::UnboundLabel)?;
                if *slot != usize::MAX {
                    return Err(AssembleError::LabelBoundTwice);
                }
                *slot = position;
            }
            position += item.len();
        }
        starts.push(position);
        Ok((starts, labels))
    }

    /// How many instructions a jump from the one at `from` skips to land on `target`.
    fn distance(
        labels: &[usize],
        from: usize,
        next_item: usize,
        target: Target,
    ) -> Result<usize, AssembleError> {
        let to = match target {
            Target::Next => next_item,
            Target::Label(Label(label)) => {
                let to = *labels.get(label).ok_or(AssembleError::UnboundLabel)?;
                if to == usize::MAX {
                    return Err(AssembleError::UnboundLabel);
                }
                to
            }
        };
        to.checked_sub(from + 1).ok_or(AssembleError::BackwardJump)
    }

    /// Resolves labels and long jumps and returns the program.
    pub(crate) fn finish(mut self) -> Result<Vec<Instruction>, AssembleError> {
        // Relax: every pass may only turn short branches into long ones, so this ends after at
        // most two passes per jump (in practice two or three passes in all).
        loop {
            let (starts, labels) = self.layout()?;
            let mut changed = false;
            for (index, item) in self.items.iter_mut().enumerate() {
                if let Item::Jump {
                    jt,
                    jf,
                    long_jt,
                    long_jf,
                    ..
                } = item
                {
                    let from = starts[index];
                    let next = starts[index + 1];
                    if !*long_jt && Self::distance(&labels, from, next, *jt)? > usize::from(u8::MAX)
                    {
                        *long_jt = true;
                        changed = true;
                    }
                    if !*long_jf && Self::distance(&labels, from, next, *jf)? > usize::from(u8::MAX)
                    {
                        *long_jf = true;
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }

        let (starts, labels) = self.layout()?;
        let mut program = Vec::with_capacity(starts.last().copied().unwrap_or(0));
        let short = |distance: usize| u8::try_from(distance).map_err(|_| AssembleError::TooLong);
        let long = |distance: usize| u32::try_from(distance).map_err(|_| AssembleError::TooLong);
        for (index, item) in self.items.iter().enumerate() {
            let from = starts[index];
            let next = starts[index + 1];
            match *item {
                Item::Statement { code, k } => program.push(Instruction {
                    code,
                    jt: 0,
                    jf: 0,
                    k,
                }),
                Item::Jump {
                    code,
                    k,
                    jt,
                    jf,
                    long_jt,
                    long_jf,
                } => {
                    // The trampolines follow the jump: first the true branch's, then the false
                    // branch's.
                    let jt_slot = from + 1;
                    let jf_slot = from + 1 + usize::from(long_jt);
                    let jt_offset = if long_jt {
                        0
                    } else {
                        short(Self::distance(&labels, from, next, jt)?)?
                    };
                    let jf_offset = if long_jf {
                        short(jf_slot - (from + 1))?
                    } else {
                        short(Self::distance(&labels, from, next, jf)?)?
                    };
                    program.push(Instruction {
                        code,
                        jt: jt_offset,
                        jf: jf_offset,
                        k,
                    });
                    if long_jt {
                        program.push(Instruction {
                            code: JMP_JA,
                            jt: 0,
                            jf: 0,
                            k: long(Self::distance(&labels, jt_slot, next, jt)?)?,
                        });
                    }
                    if long_jf {
                        program.push(Instruction {
                            code: JMP_JA,
                            jt: 0,
                            jf: 0,
                            k: long(Self::distance(&labels, jf_slot, next, jf)?)?,
                        });
                    }
                }
                Item::Bind(_) => {}
            }
        }
        Ok(program)
    }
}

/// A classic-BPF interpreter for seccomp programs, used by the tests to check compiled
/// programs by running them, and a checker that applies the kernel's rules for a valid
/// seccomp program (`bpf_check_classic` and `seccomp_check_filter`).
#[cfg(test)]
pub(crate) mod interpreter {
    use super::*;

    /// `struct seccomp_data` as the kernel fills it in.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub(crate) struct SeccompData {
        pub(crate) nr: u32,
        pub(crate) arch: u32,
        pub(crate) instruction_pointer: u64,
        pub(crate) args: [u64; 6],
    }

    impl SeccompData {
        pub(crate) fn new(arch: u32, nr: u32, args: [u64; 6]) -> Self {
            Self {
                nr,
                arch,
                instruction_pointer: 0,
                args,
            }
        }

        fn word(&self, offset: u32) -> Option<u32> {
            let mut bytes = [0u8; 64];
            bytes[0..4].copy_from_slice(&self.nr.to_le_bytes());
            bytes[4..8].copy_from_slice(&self.arch.to_le_bytes());
            bytes[8..16].copy_from_slice(&self.instruction_pointer.to_le_bytes());
            for (i, arg) in self.args.iter().enumerate() {
                bytes[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_le_bytes());
            }
            let offset = usize::try_from(offset).ok()?;
            if offset % 4 != 0 || offset + 4 > bytes.len() {
                return None;
            }
            let word: [u8; 4] = bytes[offset..offset + 4].try_into().ok()?;
            Some(u32::from_le_bytes(word))
        }
    }

    /// What running a program produced.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) struct Verdict {
        /// The filter's return value.
        pub(crate) action: u32,
        /// How many instructions ran, the return included.
        pub(crate) executed: usize,
    }

    /// Why the kernel would refuse a program.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) enum Invalid {
        Empty,
        TooLong(usize),
        Opcode { at: usize, code: u16 },
        JumpOutOfRange { at: usize },
        LoadOffset { at: usize, offset: u32 },
        NoFinalReturn,
    }

    /// Checks a program the way the kernel does before accepting it.
    pub(crate) fn check(program: &[Instruction]) -> Result<(), Invalid> {
        if program.is_empty() {
            return Err(Invalid::Empty);
        }
        if program.len() > 4096 {
            return Err(Invalid::TooLong(program.len()));
        }
        for (at, insn) in program.iter().enumerate() {
            let remaining = program.len() - at - 1;
            match insn.code {
                LD_W_ABS => {
                    if insn.k % 4 != 0 || insn.k >= 64 {
                        return Err(Invalid::LoadOffset { at, offset: insn.k });
                    }
                }
                ALU_AND_K | RET_K => {}
                JMP_JA => {
                    if usize::try_from(insn.k).map_or(true, |k| k >= remaining) {
                        return Err(Invalid::JumpOutOfRange { at });
                    }
                }
                JMP_JEQ_K | JMP_JGT_K | JMP_JGE_K => {
                    if usize::from(insn.jt) >= remaining || usize::from(insn.jf) >= remaining {
                        return Err(Invalid::JumpOutOfRange { at });
                    }
                }
                code => return Err(Invalid::Opcode { at, code }),
            }
        }
        match program.last() {
            Some(last) if last.code == RET_K => {}
            _ => return Err(Invalid::NoFinalReturn),
        }
        Ok(())
    }

    /// Runs a checked program on `data`.
    pub(crate) fn run(program: &[Instruction], data: &SeccompData) -> Result<Verdict, Invalid> {
        check(program)?;
        let mut a: u32 = 0;
        let mut pc = 0usize;
        let mut executed = 0usize;
        loop {
            let insn = program.get(pc).ok_or(Invalid::NoFinalReturn)?;
            executed += 1;
            pc += 1;
            match insn.code {
                LD_W_ABS => {
                    a = data.word(insn.k).ok_or(Invalid::LoadOffset {
                        at: pc - 1,
                        offset: insn.k,
                    })?;
                }
                ALU_AND_K => a &= insn.k,
                RET_K => {
                    return Ok(Verdict {
                        action: insn.k,
                        executed,
                    })
                }
                JMP_JA => pc += insn.k as usize,
                JMP_JEQ_K | JMP_JGT_K | JMP_JGE_K => {
                    let holds = match insn.code {
                        JMP_JEQ_K => a == insn.k,
                        JMP_JGT_K => a > insn.k,
                        _ => a >= insn.k,
                    };
                    pc += usize::from(if holds { insn.jt } else { insn.jf });
                }
                code => return Err(Invalid::Opcode { at: pc - 1, code }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::interpreter::{check, run, SeccompData};
    use super::*;

    const ALLOW: u32 = 0x7fff_0000;
    const DENY: u32 = 0x0005_0001;

    /// A program that compares the syscall number against `count` values, each sending matches
    /// to its own return far below: every early jump is longer than 255 instructions.
    fn far_program(count: u32) -> Vec<Instruction> {
        let mut asm = Assembler::new();
        asm.load(data::NR);
        let targets: Vec<Label> = (0..count).map(|_| asm.label()).collect();
        for (nr, &label) in targets.iter().enumerate() {
            asm.jump(
                Comparison::Equal,
                nr as u32,
                Target::Label(label),
                Target::Next,
            );
        }
        asm.ret(DENY);
        for (nr, &label) in targets.iter().enumerate() {
            asm.bind(label);
            // Padding so that the targets are spread out.
            for _ in 0..3 {
                asm.and(u32::MAX);
            }
            asm.ret(ALLOW | nr as u32);
        }
        asm.finish().unwrap()
    }

    #[test]
    fn short_programs_need_no_trampolines() {
        let program = far_program(10);
        assert!(program.iter().all(|insn| insn.code != JMP_JA));
        check(&program).unwrap();
    }

    #[test]
    fn long_jumps_go_through_trampolines_and_still_land_right() {
        let program = far_program(200);
        check(&program).unwrap();
        assert!(program.iter().any(|insn| insn.code == JMP_JA));
        for nr in 0..200 {
            let verdict = run(&program, &SeccompData::new(0, nr, [0; 6])).unwrap();
            assert_eq!(verdict.action, ALLOW | nr, "syscall {nr}");
        }
        let verdict = run(&program, &SeccompData::new(0, 200, [0; 6])).unwrap();
        assert_eq!(verdict.action, DENY);
    }

    #[test]
    fn both_branches_can_be_long() {
        let mut asm = Assembler::new();
        let yes = asm.label();
        let no = asm.label();
        asm.load(data::NR);
        asm.jump(
            Comparison::GreaterOrEqual,
            5,
            Target::Label(yes),
            Target::Label(no),
        );
        for _ in 0..300 {
            asm.and(u32::MAX);
        }
        asm.bind(yes);
        for _ in 0..300 {
            asm.and(u32::MAX);
        }
        asm.ret(ALLOW);
        asm.bind(no);
        asm.ret(DENY);
        let program = asm.finish().unwrap();
        assert_eq!(program[1].code, JMP_JGE_K);
        assert_eq!((program[1].jt, program[1].jf), (0, 1));
        assert_eq!(program[2].code, JMP_JA);
        assert_eq!(program[3].code, JMP_JA);
        let run_nr = |nr| run(&program, &SeccompData::new(0, nr, [0; 6])).unwrap();
        assert_eq!(run_nr(7).action, ALLOW);
        assert_eq!(run_nr(4).action, DENY);
        // The false branch: load, jump, its trampoline, return.
        assert_eq!(run_nr(4).executed, 4);
    }

    #[test]
    fn compiler_bugs_are_errors_not_panics() {
        let mut asm = Assembler::new();
        let label = asm.label();
        asm.jump(Comparison::Equal, 0, Target::Label(label), Target::Next);
        asm.ret(ALLOW);
        assert_eq!(asm.finish().unwrap_err(), AssembleError::UnboundLabel);

        let mut asm = Assembler::new();
        let label = asm.label();
        asm.bind(label);
        asm.ret(ALLOW);
        asm.jump(Comparison::Equal, 0, Target::Next, Target::Label(label));
        asm.ret(ALLOW);
        assert_eq!(asm.finish().unwrap_err(), AssembleError::BackwardJump);

        let mut asm = Assembler::new();
        let label = asm.label();
        asm.bind(label);
        asm.bind(label);
        asm.ret(ALLOW);
        assert_eq!(asm.finish().unwrap_err(), AssembleError::LabelBoundTwice);
    }

    #[test]
    fn argument_offsets_match_seccomp_data() {
        assert_eq!(data::arg_low(0), 16);
        assert_eq!(data::arg_high(0), 20);
        assert_eq!(data::arg_low(5), 56);
        assert_eq!(data::arg_high(5), 60);
        let data = SeccompData::new(
            7,
            9,
            [0x1111_2222_3333_4444, 0, 0, 0, 0, 0xaaaa_bbbb_cccc_dddd],
        );
        let load = |offset| {
            let program = [
                Instruction {
                    code: LD_W_ABS,
                    jt: 0,
                    jf: 0,
                    k: offset,
                },
                Instruction {
                    code: JMP_JEQ_K,
                    jt: 0,
                    jf: 1,
                    k: 0,
                },
                Instruction {
                    code: RET_K,
                    jt: 0,
                    jf: 0,
                    k: 0,
                },
                Instruction {
                    code: RET_K,
                    jt: 0,
                    jf: 0,
                    k: 1,
                },
            ];
            // Returns 0 when the loaded word is 0, 1 otherwise; enough to see which word moved.
            run(&program, &data).unwrap().action
        };
        assert_eq!(load(data::arg_low(1)), 0);
        assert_eq!(load(data::arg_high(5)), 1);
    }

    #[test]
    fn the_checker_refuses_what_the_kernel_refuses() {
        assert_eq!(check(&[]), Err(interpreter::Invalid::Empty));
        let jump_past_end = [Instruction {
            code: JMP_JA,
            jt: 0,
            jf: 0,
            k: 1,
        }];
        assert!(matches!(
            check(&jump_past_end),
            Err(interpreter::Invalid::JumpOutOfRange { .. })
        ));
        let unaligned = [
            Instruction {
                code: LD_W_ABS,
                jt: 0,
                jf: 0,
                k: 2,
            },
            Instruction {
                code: RET_K,
                jt: 0,
                jf: 0,
                k: 0,
            },
        ];
        assert!(matches!(
            check(&unaligned),
            Err(interpreter::Invalid::LoadOffset { .. })
        ));
        let no_return = [Instruction {
            code: LD_W_ABS,
            jt: 0,
            jf: 0,
            k: 0,
        }];
        assert_eq!(check(&no_return), Err(interpreter::Invalid::NoFinalReturn));
    }
}
