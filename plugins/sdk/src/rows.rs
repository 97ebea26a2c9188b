//! Row sets: tables stored column by column. Reading a cell, a row or a column by name, and
//! building a row set from rows or from columns.

use crate::types::{Column, ColumnData, PackedTexts, RowSet, Value};

impl PackedTexts {
    pub fn new() -> Self {
        Self {
            data: String::new(),
            ends: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Text `index`; `None` past the end or on offsets that do not cut `data` at characters.
    pub fn get(&self, index: usize) -> Option<&str> {
        let end = *self.ends.get(index)? as usize;
        let start = match index {
            0 => 0,
            _ => *self.ends.get(index - 1)? as usize,
        };
        self.data.get(start..end)
    }

    pub fn push(&mut self, text: &str) {
        self.data.push_str(text);
        self.ends
            .push(u32::try_from(self.data.len()).unwrap_or(u32::MAX));
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).map(|i| self.get(i).unwrap_or_default())
    }
}

impl Default for PackedTexts {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> FromIterator<&'a str> for PackedTexts {
    fn from_iter<I: IntoIterator<Item = &'a str>>(texts: I) -> Self {
        let mut packed = Self::new();
        for text in texts {
            packed.push(text);
        }
        packed
    }
}

impl ColumnData {
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Booleans(v) => v.len(),
            ColumnData::Integers(v) => v.len(),
            ColumnData::Floats(v) => v.len(),
            ColumnData::Decimals(t)
            | ColumnData::Texts(t)
            | ColumnData::Timestamps(t)
            | ColumnData::Json(t) => t.len(),
            ColumnData::Values(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cell `index` as stored (a null cell's placeholder included); `Null` past the end.
    fn value(&self, index: usize) -> Value {
        let text = |t: &PackedTexts| t.get(index).map(str::to_owned);
        let value = match self {
            ColumnData::Booleans(v) => v.get(index).map(|b| Value::Boolean(*b)),
            ColumnData::Integers(v) => v.get(index).map(|i| Value::Integer(*i)),
            ColumnData::Floats(v) => v.get(index).map(|f| Value::Float(*f)),
            ColumnData::Decimals(t) => text(t).map(Value::Decimal),
            ColumnData::Texts(t) => text(t).map(Value::Text),
            ColumnData::Timestamps(t) => text(t).map(Value::Timestamp),
            ColumnData::Json(t) => text(t).map(Value::Json),
            ColumnData::Values(v) => v.get(index).cloned(),
        };
        value.unwrap_or(Value::Null)
    }
}

/// What one column holds, found while building it from values.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Boolean,
    Integer,
    Float,
    Decimal,
    Text,
    Timestamp,
    Json,
}

fn kind_of(value: &Value) -> Option<Kind> {
    Some(match value {
        Value::Null => return None,
        Value::Boolean(_) => Kind::Boolean,
        Value::Integer(_) => Kind::Integer,
        Value::Float(_) => Kind::Float,
        Value::Decimal(_) => Kind::Decimal,
        Value::Text(_) => Kind::Text,
        Value::Timestamp(_) => Kind::Timestamp,
        Value::Json(_) => Kind::Json,
    })
}

impl Column {
    /// A column without nulls.
    pub fn new(name: impl Into<String>, data: ColumnData) -> Self {
        Self {
            name: name.into(),
            data,
            nulls: Vec::new(),
        }
    }

    /// A column of `values`, stored typed when every non-null value has one type, as
    /// `values` otherwise.
    pub fn from_values(name: impl Into<String>, values: Vec<Value>) -> Self {
        let mut kinds = values.iter().filter_map(kind_of);
        let first = kinds.next();
        let uniform = match first {
            Some(kind) => kinds.all(|k| k == kind).then_some(kind),
            None => Some(Kind::Text),
        };
        let nulls: Vec<bool> = if values.iter().any(|v| matches!(v, Value::Null)) {
            values.iter().map(|v| matches!(v, Value::Null)).collect()
        } else {
            Vec::new()
        };
        let texts = |values: &[Value]| -> PackedTexts {
            values
                .iter()
                .map(|v| v.as_str().unwrap_or_default())
                .collect()
        };
        let data = match uniform {
            Some(Kind::Boolean) => ColumnData::Booleans(
                values
                    .iter()
                    .map(|v| matches!(v, Value::Boolean(true)))
                    .collect(),
            ),
            Some(Kind::Integer) => ColumnData::Integers(
                values
                    .iter()
                    .map(|v| match v {
                        Value::Integer(i) => *i,
                        _ => 0,
                    })
                    .collect(),
            ),
            Some(Kind::Float) => ColumnData::Floats(
                values
                    .iter()
                    .map(|v| match v {
                        Value::Float(f) => *f,
                        _ => 0.0,
                    })
                    .collect(),
            ),
            Some(Kind::Decimal) => ColumnData::Decimals(texts(&values)),
            Some(Kind::Text) => ColumnData::Texts(texts(&values)),
            Some(Kind::Timestamp) => ColumnData::Timestamps(texts(&values)),
            Some(Kind::Json) => ColumnData::Json(texts(&values)),
            None => {
                return Self {
                    name: name.into(),
                    data: ColumnData::Values(values),
                    nulls: Vec::new(),
                };
            }
        };
        Self {
            name: name.into(),
            data,
            nulls,
        }
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn is_null(&self, index: usize) -> bool {
        self.nulls.get(index).copied().unwrap_or(false)
    }

    /// Cell `index`; `Null` when it is null or past the end.
    pub fn value(&self, index: usize) -> Value {
        if self.is_null(index) {
            return Value::Null;
        }
        self.data.value(index)
    }

    /// The same cells under another name.
    pub fn renamed(self, name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..self
        }
    }
}

impl RowSet {
    pub fn new() -> Self {
        Self {
            len: 0,
            columns: Vec::new(),
        }
    }

    /// Row sets are columnar; this builds one from rows (a short row reads as nulls).
    pub fn from_rows(columns: Vec<String>, rows: Vec<Vec<Value>>) -> Self {
        let len = u32::try_from(rows.len()).unwrap_or(u32::MAX);
        let mut cells: Vec<Vec<Value>> = columns
            .iter()
            .map(|_| Vec::with_capacity(rows.len()))
            .collect();
        for row in rows {
            let mut row = row.into_iter();
            for column in &mut cells {
                column.push(row.next().unwrap_or(Value::Null));
            }
        }
        Self {
            len,
            columns: columns
                .into_iter()
                .zip(cells)
                .map(|(name, values)| Column::from_values(name, values))
                .collect(),
        }
    }

    /// A row set of these columns; `len` is the first column's.
    pub fn from_columns(columns: Vec<Column>) -> Self {
        let len = columns.first().map_or(0, Column::len);
        Self {
            len: u32::try_from(len).unwrap_or(u32::MAX),
            columns,
        }
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The cell at `row` of column `column` (an index); `Null` outside the table.
    pub fn value(&self, row: usize, column: usize) -> Value {
        self.columns
            .get(column)
            .map_or(Value::Null, |c| c.value(row))
    }

    pub fn row(&self, index: usize) -> Vec<Value> {
        self.columns.iter().map(|c| c.value(index)).collect()
    }

    pub fn rows(&self) -> impl Iterator<Item = Vec<Value>> + '_ {
        (0..self.len()).map(|i| self.row(i))
    }
}

impl Default for RowSet {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_through_typed_columns() {
        let rows = vec![
            vec![Value::text("GT-01"), Value::Float(40.5), Value::Integer(3)],
            vec![Value::text("GT-02"), Value::Null, Value::text("x")],
            vec![Value::text("용량"), Value::Float(1.0), Value::Null],
        ];
        let set = RowSet::from_rows(
            vec!["code".into(), "v".into(), "mixed".into()],
            rows.clone(),
        );
        assert_eq!(set.len(), 3);
        assert!(matches!(set.columns[0].data, ColumnData::Texts(_)));
        assert!(matches!(set.columns[1].data, ColumnData::Floats(_)));
        assert!(matches!(set.columns[2].data, ColumnData::Values(_)));
        assert_eq!(set.rows().collect::<Vec<_>>(), rows);
        assert_eq!(set.value(2, 0), Value::text("용량"));
        assert_eq!(set.value(9, 0), Value::Null);
        assert_eq!(set.column_index("v"), Some(1));
    }

    #[test]
    fn an_all_null_column_is_texts_marked_null() {
        let set = RowSet::from_rows(vec!["note".into()], vec![vec![Value::Null]; 2]);
        assert_eq!(set.columns[0].nulls, [true, true]);
        assert_eq!(set.row(1), [Value::Null]);
    }

    #[test]
    fn packed_texts_refuse_offsets_inside_a_character() {
        let texts = PackedTexts {
            data: "용".into(),
            ends: vec![1, 3],
        };
        assert_eq!(texts.get(0), None);
        assert_eq!(texts.get(2), None);
    }
}
