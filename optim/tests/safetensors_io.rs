//! safetensors export/import: f32 and f64 round trips (through bytes and files), and
//! rejection of element types graphgrad does not have and of shapes that do not fit.

use graphgrad_autodiff::{DType, StateDict, Tensor, Var};
use graphgrad_optim::{
    from_safetensors_bytes, load_safetensors, load_safetensors_into, save_safetensors, to_safetensors_bytes,
    Error,
};
use safetensors::tensor::{Dtype, TensorView};

fn state() -> StateDict {
    let mut s = StateDict::new();
    s.insert(
        "enc.weight".into(),
        Tensor::from_vec(vec![1.5f32, -2.0, 0.0, f32::MIN_POSITIVE, 3.25, -0.0], &[2, 3]).unwrap(),
    );
    s.insert("enc.bias".into(), Tensor::from_vec(vec![0.1f64, -1e300, 7.0], &[3]).unwrap());
    s.insert("scale".into(), Tensor::scalar(2.5f32));
    s.insert("empty".into(), Tensor::zeros(&[0, 4], DType::F64).unwrap());
    s
}

fn bits(t: &Tensor) -> Vec<u64> {
    match t.dtype() {
        DType::F32 => t.to_vec::<f32>().unwrap().iter().map(|x| u64::from(x.to_bits())).collect(),
        DType::F64 => t.to_vec::<f64>().unwrap().iter().map(|x| x.to_bits()).collect(),
        DType::I64 => t.to_vec::<i64>().unwrap().iter().map(|&x| x as u64).collect(),
    }
}

fn assert_same(a: &StateDict, b: &StateDict) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, t) in a {
        let u = &b[name];
        assert_eq!((t.shape(), t.dtype()), (u.shape(), u.dtype()), "{name}");
        assert_eq!(bits(t), bits(u), "{name}");
    }
}

#[test]
fn round_trip_is_bit_exact_through_bytes_and_files() {
    let s = state();
    let bytes = to_safetensors_bytes(&s).unwrap();
    assert_same(&s, &from_safetensors_bytes(&bytes).unwrap());
    // The file is plain safetensors: the reference reader sees the same dtypes and shapes.
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(file.tensor("enc.weight").unwrap().dtype(), Dtype::F32);
    assert_eq!(file.tensor("enc.bias").unwrap().shape(), &[3]);
    let dir = std::env::temp_dir().join(format!("graphgrad-optim-st-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    save_safetensors(&s, &path).unwrap();
    assert_same(&s, &load_safetensors(&path).unwrap());
    // Importing into parameters of the right names and shapes.
    let params: Vec<(String, Var)> = s
        .iter()
        .map(|(n, t)| (n.clone(), Var::new(n.as_str(), &Tensor::zeros(t.shape(), t.dtype()).unwrap())))
        .collect();
    load_safetensors_into(&params, &path).unwrap();
    let weight = &params.iter().find(|(n, _)| n == "enc.weight").unwrap().1;
    assert_eq!(weight.to_vec::<f32>().unwrap(), vec![1.5, -2.0, 0.0, f32::MIN_POSITIVE, 3.25, -0.0]);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn file_with(dtype: Dtype, shape: Vec<usize>, data: &[u8]) -> Vec<u8> {
    let view = TensorView::new(dtype, shape, data).unwrap();
    safetensors::serialize([("w", view)], None).unwrap()
}

#[test]
fn other_element_types_are_rejected_naming_the_tensor() {
    for (dtype, bytes) in
        [(Dtype::I32, vec![0u8; 8]), (Dtype::F16, vec![0u8; 4]), (Dtype::BF16, vec![0u8; 4])]
    {
        let file = file_with(dtype, vec![2], &bytes);
        let err = from_safetensors_bytes(&file).unwrap_err();
        assert!(matches!(err, Error::Safetensors { .. }));
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("tensor `w` has element type {dtype:?}"))
                && msg.contains("only F32, F64 and I64"),
            "{msg}"
        );
    }
}

#[test]
fn wrong_shapes_are_rejected_listing_the_tensor_and_both_shapes() {
    let dir = std::env::temp_dir().join(format!("graphgrad-optim-st-shape-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("w.safetensors");
    let data: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
    std::fs::write(&path, file_with(Dtype::F32, vec![2, 3], &data)).unwrap();
    let params = vec![("w".to_string(), Var::new("w", &Tensor::zeros(&[3, 2], DType::F32).unwrap()))];
    let err = load_safetensors_into(&params, &path).unwrap_err().to_string();
    assert!(err.contains("w: expected [3, 2] f32, found [2, 3] f32"), "{err}");
    assert_eq!(params[0].1.to_vec::<f32>().unwrap(), vec![0.0; 6], "nothing written on error");
    // A wrong dtype (f64 parameter, f32 file) is a mismatch too.
    let params = vec![("w".to_string(), Var::new("w", &Tensor::zeros(&[2, 3], DType::F64).unwrap()))];
    let err = load_safetensors_into(&params, &path).unwrap_err().to_string();
    assert!(err.contains("w: expected [2, 3] f64, found [2, 3] f32"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn garbage_is_rejected_with_a_clear_error() {
    let err = from_safetensors_bytes(b"not a safetensors file at all").unwrap_err().to_string();
    assert!(err.starts_with("safetensors: not a valid file"), "{err}");
    let err = load_safetensors("/nonexistent/graphgrad.safetensors").unwrap_err().to_string();
    assert!(err.contains("/nonexistent/graphgrad.safetensors: cannot read"), "{err}");
}
