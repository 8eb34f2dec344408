//! The operation types the generator measures, named as warp names them in its reports.

/// Number of operation types.
pub const OP_COUNT: usize = 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Get,
    /// HEAD of an object (warp's STAT).
    Stat,
    Put,
    /// A multi-delete request (up to `--batch` objects) or, in `mixed`, one DELETE.
    Delete,
    /// One page of ListObjectsV2.
    List,
    /// One part of a multipart upload.
    PutPart,
}

impl Op {
    pub const ALL: [Op; OP_COUNT] = [Op::Get, Op::Stat, Op::Put, Op::Delete, Op::List, Op::PutPart];

    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "GET",
            Op::Stat => "STAT",
            Op::Put => "PUT",
            Op::Delete => "DELETE",
            Op::List => "LIST",
            Op::PutPart => "PUTPART",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_indexes_round_trip() {
        for (i, op) in Op::ALL.into_iter().enumerate() {
            assert_eq!(op.index(), i);
        }
        let mut names: Vec<&str> = Op::ALL.iter().map(|op| op.name()).collect();
        names.dedup();
        assert_eq!(names.len(), OP_COUNT);
    }
}
