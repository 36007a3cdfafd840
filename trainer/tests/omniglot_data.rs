//! Omniglot loader, splits, episodes, preprocessing and image-folder readers, on the full data
//! set read in place from `../shared/data/omniglot` (relative to the repository root; override
//! with `OMNIGLOT_DIR`). Run with `cargo test --release -p anole-trainer --test omniglot_data`.

use anole_trainer::data::images::{self, Gray};
use anole_trainer::data::{read_query, read_support, Omniglot, Part, Split, PIXELS, SIDE};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

fn data_dir() -> PathBuf {
    match std::env::var_os("OMNIGLOT_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/omniglot"),
    }
}

/// The full set, loaded once per test binary.
fn full() -> Arc<Omniglot> {
    static DATA: OnceLock<Arc<Omniglot>> = OnceLock::new();
    Arc::clone(DATA.get_or_init(|| {
        let t = Instant::now();
        let data = Omniglot::load(&data_dir()).unwrap_or_else(|e| panic!("{e:#}"));
        eprintln!(
            "loaded {} images of {} characters in {:.2?}",
            data.num_images(),
            data.characters().len(),
            t.elapsed()
        );
        Arc::new(data)
    }))
}

/// The bytes of every entry of one official archive whose path starts with `prefix`.
fn zip_entries(part: Part, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let path = data_dir().join(format!("{}.zip", part.dir_name()));
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
    let mut out = Vec::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).unwrap();
        if f.name().starts_with(prefix) && f.name().ends_with(".png") {
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).unwrap();
            out.push((f.name().to_owned(), bytes));
        }
    }
    out.sort();
    out
}

fn write_file(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn err_text<T>(r: anyhow::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn counts_match_the_release() {
    let data = full();
    assert_eq!(data.characters().len(), 1623);
    assert_eq!(data.count(Part::Background), 964);
    assert_eq!(data.count(Part::Evaluation), 659);
    assert_eq!(data.num_images(), 32_460);
    let images = |part| {
        data.characters()
            .iter()
            .filter(|c| c.part == part)
            .map(|c| c.len())
            .sum::<usize>()
    };
    assert_eq!(images(Part::Background), 19_280);
    assert_eq!(images(Part::Evaluation), 13_180);
    assert!(data.characters().iter().all(|c| c.len() == 20));
    let alphabets = |part| {
        data.characters()
            .iter()
            .filter(|c| c.part == part)
            .map(|c| c.alphabet.clone())
            .collect::<BTreeSet<_>>()
            .len()
    };
    assert_eq!(
        (alphabets(Part::Background), alphabets(Part::Evaluation)),
        (30, 20)
    );
    let names: BTreeSet<String> = data.characters().iter().map(|c| c.name()).collect();
    assert_eq!(names.len(), 1623, "character names are unique");
    assert_eq!(
        data.characters()[0].name(),
        "Alphabet_of_the_Magi/character01"
    );
}

#[test]
fn paper_split_is_1200_423_seeded_and_rotated() {
    let data = full();
    let s = data.split(Split::Paper, 0).unwrap();
    assert_eq!(s.train.len(), 4 * 1200);
    assert_eq!(s.test.len(), 423);
    let train_chars: BTreeSet<usize> = s.train.classes().iter().map(|c| c.character).collect();
    let test_chars: BTreeSet<usize> = s.test.classes().iter().map(|c| c.character).collect();
    assert_eq!(train_chars.len(), 1200);
    assert!(train_chars.is_disjoint(&test_chars));
    for &ch in &train_chars {
        let rots: BTreeSet<u8> = s
            .train
            .classes()
            .iter()
            .filter(|c| c.character == ch)
            .map(|c| c.rotation)
            .collect();
        assert_eq!(rots, (0..4).collect());
    }
    assert!(s.test.classes().iter().all(|c| c.rotation == 0));
    // The pooled split mixes both halves of the release.
    assert!(test_chars
        .iter()
        .any(|&c| data.characters()[c].part == Part::Background));
    assert!(test_chars
        .iter()
        .any(|&c| data.characters()[c].part == Part::Evaluation));
    // Seeded: the same seed gives the same held-out list, another seed another one.
    let names = s.test.character_names();
    assert_eq!(names.len(), 423);
    assert_eq!(
        data.split(Split::Paper, 0).unwrap().test.character_names(),
        names
    );
    assert_ne!(
        data.split(Split::Paper, 1).unwrap().test.character_names(),
        names
    );
    // A held-out list read back from a card gives the same pool.
    let again = data.pool(&names).unwrap();
    assert_eq!(again.character_names(), names);
    assert!(err_text(data.pool(&["Nope/character01"])).contains("Nope/character01"));
    assert_eq!(
        s.train.class_name(s.train.classes()[1]),
        format!("{}@90", s.train.class_name(s.train.classes()[0]))
    );
}

#[test]
fn lake_split_is_background_vs_evaluation() {
    let data = full();
    let s = data.split(Split::Lake, 123).unwrap();
    assert_eq!(s.train.len(), 4 * 964);
    assert_eq!(s.test.len(), 659);
    assert!(s
        .train
        .classes()
        .iter()
        .all(|c| data.characters()[c.character].part == Part::Background));
    assert!(s
        .test
        .classes()
        .iter()
        .all(|c| data.characters()[c.character].part == Part::Evaluation));
    assert_eq!(
        data.split(Split::Lake, 0).unwrap().test.character_names(),
        s.test.character_names()
    );
}

/// Validation characters come out of the training split only: the test characters are those
/// of the split without them, and the three sets are disjoint and cover every character.
#[test]
fn validation_characters_come_from_the_training_split() {
    let data = full();
    for split in [Split::Paper, Split::Lake] {
        let plain = data.split(split, 4).unwrap();
        let s = data.split_with_validation(split, 4, 50).unwrap();
        assert_eq!(s.test.character_names(), plain.test.character_names());
        let val = s.validation.character_names();
        assert_eq!(val.len(), 50);
        assert!(s.validation.classes().iter().all(|c| c.rotation == 0));
        let train: BTreeSet<String> = s.train.character_names().into_iter().collect();
        let test: BTreeSet<String> = s.test.character_names().into_iter().collect();
        let plain_train: BTreeSet<String> = plain.train.character_names().into_iter().collect();
        assert_eq!(train.len() + val.len(), plain_train.len());
        for v in &val {
            assert!(plain_train.contains(v) && !train.contains(v) && !test.contains(v));
        }
        assert_eq!(
            data.split_with_validation(split, 4, 50)
                .unwrap()
                .validation
                .character_names(),
            val
        );
        assert_eq!(
            data.split_with_validation(split, 4, 0)
                .unwrap()
                .validation
                .len(),
            0
        );
    }
    let e = data.split_with_validation(Split::Lake, 0, 964).unwrap_err();
    assert!(format!("{e:#}").contains("964 validation characters leave no training characters"));
}

/// Within-alphabet episodes and Lake's episodes: every class of one alphabet; Lake's support
/// set is one drawer's drawings and the query set another's, one of each class.
#[test]
fn within_alphabet_and_lake_episodes() {
    use anole_trainer::data::omniglot::Classes;
    let data = full();
    let s = data.split(Split::Lake, 0).unwrap();
    let alphabet =
        |c: &anole_trainer::data::omniglot::Class| data.characters()[c.character].alphabet.clone();
    let mut alphabets = BTreeSet::new();
    for i in 0..40 {
        let mut rng = ChaCha8Rng::seed_from_u64(i);
        let ep = s.test.lake_episode(20, &mut rng).unwrap();
        assert_eq!((ep.ways, ep.shots, ep.queries), (20, 1, 1));
        let names: BTreeSet<String> = ep.classes.iter().map(alphabet).collect();
        assert_eq!(names.len(), 1, "one alphabet per episode");
        alphabets.extend(names);
        assert_eq!(ep.classes.iter().collect::<BTreeSet<_>>().len(), 20);
        let (sd, qd) = (ep.support_drawings[0], ep.query_drawings[0]);
        assert_ne!(sd, qd);
        assert!(ep.support_drawings.iter().all(|&d| d == sd));
        assert!(ep.query_drawings.iter().all(|&d| d == qd));
        let mut labels = ep.query_labels.clone();
        labels.sort_by(f32::total_cmp);
        assert_eq!(labels, (0..20).map(|l| l as f32).collect::<Vec<_>>());
        let again = s
            .test
            .lake_episode(20, &mut ChaCha8Rng::seed_from_u64(i))
            .unwrap();
        assert_eq!(again, ep);
        let mut rng = ChaCha8Rng::seed_from_u64(i);
        let tr = s
            .train
            .episode_of(Classes::Alphabet, 5, 3, 2, &mut rng)
            .unwrap();
        assert_eq!(
            tr.classes
                .iter()
                .map(alphabet)
                .collect::<BTreeSet<_>>()
                .len(),
            1
        );
        assert_eq!(tr.support_labels.len(), 15);
    }
    assert!(alphabets.len() > 5, "{alphabets:?}");
    // The default episodes are those of `Classes::Any`.
    let mut a = ChaCha8Rng::seed_from_u64(3);
    let mut b = ChaCha8Rng::seed_from_u64(3);
    assert_eq!(
        s.test.episode(5, 1, 1, &mut a).unwrap(),
        s.test.episode_of(Classes::Any, 5, 1, 1, &mut b).unwrap()
    );
    let e = s.test.lake_episode(60, &mut a).unwrap_err();
    assert!(
        format!("{e:#}").contains("need an alphabet with 60 classes"),
        "{e:#}"
    );
}

#[test]
fn episodes_are_well_formed_disjoint_and_deterministic() {
    let data = full();
    let s = data.split(Split::Paper, 0).unwrap();
    for (pool, ways, shots, queries) in [
        (&s.train, 5, 10, 0),
        (&s.test, 5, 1, 1),
        (&s.test, 5, 5, 15),
        (&s.test, 20, 5, 1),
    ] {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let ep = pool.episode(ways, shots, queries, &mut rng).unwrap();
        assert_eq!(ep.support_inputs.len(), ways * shots * PIXELS);
        assert_eq!(ep.query_inputs.len(), ways * queries * PIXELS);
        assert_eq!(
            (ep.support_labels.len(), ep.query_labels.len()),
            (ways * shots, ways * queries)
        );
        assert_eq!(ep.classes.len(), ways);
        assert_eq!(
            ep.classes.iter().collect::<BTreeSet<_>>().len(),
            ways,
            "distinct classes"
        );
        for label in 0..ways {
            let lf = label as f32;
            assert_eq!(
                ep.support_labels.iter().filter(|&&l| l == lf).count(),
                shots
            );
            assert_eq!(
                ep.query_labels.iter().filter(|&&l| l == lf).count(),
                queries
            );
            let sup: BTreeSet<usize> = ep
                .support_labels
                .iter()
                .zip(&ep.support_drawings)
                .filter(|(&l, _)| l == lf)
                .map(|(_, &d)| d)
                .collect();
            let qry: BTreeSet<usize> = ep
                .query_labels
                .iter()
                .zip(&ep.query_drawings)
                .filter(|(&l, _)| l == lf)
                .map(|(_, &d)| d)
                .collect();
            assert_eq!(
                (sup.len(), qry.len()),
                (shots, queries),
                "drawings are distinct within a set"
            );
            assert!(
                sup.is_disjoint(&qry),
                "query drawings must not appear in the support set"
            );
        }
        assert!(ep
            .support_inputs
            .iter()
            .chain(&ep.query_inputs)
            .all(|v| (0.0..=1.0).contains(v)));
        // Each row is the stored drawing of its class, rotated as the class says.
        let mut row = vec![0f32; PIXELS];
        for (r, (&l, &d)) in ep
            .support_labels
            .iter()
            .zip(&ep.support_drawings)
            .enumerate()
        {
            pool.write_input(ep.classes[l as usize], d, &mut row);
            assert_eq!(&ep.support_inputs[r * PIXELS..(r + 1) * PIXELS], &row[..]);
        }
        ep.support().unwrap();
        ep.query().unwrap();
        // Deterministic given the rng.
        let again = pool
            .episode(ways, shots, queries, &mut ChaCha8Rng::seed_from_u64(7))
            .unwrap();
        assert_eq!(again, ep);
        let other = pool
            .episode(ways, shots, queries, &mut ChaCha8Rng::seed_from_u64(8))
            .unwrap();
        assert_ne!(other.classes, ep.classes);
    }
    // Support rows are shuffled, not grouped by class.
    let ep = s
        .test
        .episode(5, 5, 0, &mut ChaCha8Rng::seed_from_u64(1))
        .unwrap();
    let mut sorted = ep.support_labels.clone();
    sorted.sort_by(f32::total_cmp);
    assert_ne!(ep.support_labels, sorted);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    assert!(err_text(s.test.episode(424, 1, 1, &mut rng)).contains("424-way"));
    assert!(err_text(s.test.episode(5, 15, 6, &mut rng)).contains("20 images"));
}

#[test]
fn preprocessing_matches_the_reference_on_a_known_image() {
    let entries = zip_entries(
        Part::Background,
        "images_background/Alphabet_of_the_Magi/character01/0709_01.png",
    );
    assert_eq!(entries.len(), 1);
    let bytes = &entries[0].1;
    let gray = images::decode_png(bytes).unwrap();
    assert_eq!((gray.width, gray.height), (105, 105));
    assert!(
        gray.values.iter().all(|&v| v == 0.0 || v == 1.0),
        "1-bit drawing"
    );
    let img = images::preprocess_png(bytes).unwrap();
    // PIL's nearest resize 105 → 28: output pixel x samples source floor((x + 0.5) * 3.75).
    for r in 0..SIDE {
        for c in 0..SIDE {
            let (sr, sc) = (
                ((r as f64 + 0.5) * 3.75) as usize,
                ((c as f64 + 0.5) * 3.75) as usize,
            );
            assert_eq!(
                f32::from(img[r * SIDE + c]) / 255.0,
                gray.values[sr * 105 + sc]
            );
        }
    }
    let mut x = vec![0f32; PIXELS];
    images::write_f32(&img, &mut x);
    let ink = x.iter().filter(|&&v| v == 0.0).count();
    let paper = x.iter().filter(|&&v| v == 1.0).count();
    assert_eq!(
        ink + paper,
        PIXELS,
        "values are exactly 0 (ink) or 1 (paper), as in the reference"
    );
    assert!(
        ink > 10 && paper > PIXELS / 2,
        "a drawing: some ink on white paper (ink {ink}, paper {paper})"
    );
    // The loader stores exactly this image for the first drawing of the first character.
    assert_eq!(full().image(0, 0), &img);
}

#[test]
fn large_colour_png_is_preprocessed_like_the_original() {
    // A 2× upscaled RGB copy of an Omniglot drawing preprocesses to the same 28×28 image.
    let entries = zip_entries(Part::Background, "images_background/Tifinagh/character55/");
    let (_, bytes) = &entries[0];
    let gray = images::decode_png(bytes).unwrap();
    let big = 2 * gray.width;
    let mut rgb = Vec::with_capacity(big * big * 3);
    for y in 0..big {
        for x in 0..big {
            let v = (gray.values[(y / 2) * gray.width + x / 2] * 255.0) as u8;
            rgb.extend_from_slice(&[v, v, v]);
        }
    }
    let mut png_bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png_bytes, big as u32, big as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header().unwrap().write_image_data(&rgb).unwrap();
    }
    assert_eq!(
        images::preprocess_png(&png_bytes).unwrap(),
        images::preprocess_png(bytes).unwrap()
    );
    let tiny = images::preprocess(&Gray {
        width: 3,
        height: 2,
        values: vec![0.0, 1.0, 0.5, 1.0, 0.0, 1.0],
    });
    assert_eq!(tiny.len(), PIXELS);
}

#[test]
fn unzipped_folders_load_like_the_archives_and_subset_works() {
    let tmp = tempfile::tempdir().unwrap();
    // Two characters of each half, written in the unzipped layout.
    for (part, prefix) in [
        (Part::Background, "images_background/Korean/character0"),
        (Part::Evaluation, "images_evaluation/Kannada/character1"),
    ] {
        for (name, bytes) in zip_entries(part, prefix).into_iter().filter(|(n, _)| {
            n.contains("character01/")
                || n.contains("character02/")
                || n.contains("character10/")
                || n.contains("character11/")
        }) {
            write_file(&tmp.path().join(name), &bytes);
        }
    }
    let small = Omniglot::load(tmp.path()).unwrap();
    assert_eq!(
        (small.count(Part::Background), small.count(Part::Evaluation)),
        (2, 2)
    );
    assert_eq!(small.num_images(), 80);
    let data = full();
    let index: HashMap<String, usize> = data
        .characters()
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name(), i))
        .collect();
    for (i, c) in small.characters().iter().enumerate() {
        let j = index[&c.name()];
        for k in 0..20 {
            assert_eq!(
                small.image(i, k),
                data.image(j, k),
                "{} drawing {k}",
                c.name()
            );
        }
    }
    // Subset for CI: evenly spread, both halves, splits scale with it.
    let sub = Arc::new(data.subset(100).unwrap());
    assert_eq!((sub.characters().len(), sub.num_images()), (100, 2000));
    assert!(sub.count(Part::Background) > 0 && sub.count(Part::Evaluation) > 0);
    let s = sub.split(Split::Paper, 0).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (4 * 74, 26));
    let ep = s
        .test
        .episode(5, 1, 1, &mut ChaCha8Rng::seed_from_u64(0))
        .unwrap();
    assert_eq!(ep.query_labels.len(), 5);
    assert!(data.subset(0).is_err() && data.subset(1624).is_err());
}

#[test]
fn bad_data_paths_and_layouts_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    // Missing path.
    let missing = tmp.path().join("no-such-folder");
    let e = err_text(Omniglot::load(&missing));
    assert!(
        e.contains("no-such-folder") && e.contains("does not exist"),
        "{e}"
    );
    // A folder without the release.
    let e = err_text(Omniglot::load(tmp.path()));
    assert!(e.contains("images_background.zip"), "{e}");
    // A zip of another layout.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let zpath = other.join("images_background.zip");
    {
        let mut w = zip::ZipWriter::new(std::fs::File::create(&zpath).unwrap());
        w.start_file(
            "digits/7/img001.png",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        w.write_all(&[0u8; 16]).unwrap();
        w.finish().unwrap();
    }
    std::fs::write(other.join("images_evaluation.zip"), b"not a zip").unwrap();
    let e = err_text(Omniglot::load(&other));
    assert!(
        e.contains("images_background.zip")
            && e.contains("digits/7/img001.png")
            && e.contains("layout"),
        "{e}"
    );
    // A file that is not a zip archive.
    std::fs::remove_file(&zpath).unwrap();
    std::fs::rename(other.join("images_evaluation.zip"), &zpath).unwrap();
    let e = err_text(Omniglot::load(&other));
    assert!(
        e.contains("images_background.zip") && e.contains("not a readable zip"),
        "{e}"
    );
    // A corrupt PNG in the unzipped layout.
    let folders = tmp.path().join("folders");
    let bad = folders.join("images_background/Alpha/character01/0001_01.png");
    write_file(&bad, b"\x89PNG\r\n\x1a\n garbage");
    write_file(
        &folders.join("images_evaluation/Beta/character01/0002_01.png"),
        &zip_entries(Part::Evaluation, "images_evaluation/Angelic/character01/")[0].1,
    );
    let e = err_text(Omniglot::load(&folders));
    assert!(
        e.contains(&bad.display().to_string()) && e.contains("PNG"),
        "{e}"
    );
    // An empty character folder.
    std::fs::remove_file(&bad).unwrap();
    let e = err_text(Omniglot::load(&folders));
    assert!(
        e.contains("Alpha/character01") && e.contains("no PNG"),
        "{e}"
    );
}

#[test]
fn support_and_query_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let support = tmp.path().join("support");
    let query = tmp.path().join("query");
    let sources = [
        ("b_class", "images_background/Greek/character01/"),
        ("a_class", "images_background/Latin/character02/"),
    ];
    let mut expected = Vec::new();
    for (class, prefix) in sources {
        let entries = zip_entries(Part::Background, prefix);
        for (name, bytes) in &entries[..3] {
            write_file(
                &support
                    .join(class)
                    .join(Path::new(name).file_name().unwrap()),
                bytes,
            );
        }
        write_file(&query.join(format!("{class}.png")), &entries[10].1);
        expected.push(images::preprocess_png(&entries[10].1).unwrap());
    }
    let s = read_support(&support).unwrap();
    assert_eq!(
        s.classes,
        vec!["a_class".to_string(), "b_class".to_string()]
    );
    assert_eq!((s.len(), s.inputs.len()), (6, 6 * PIXELS));
    assert_eq!(
        s.labels,
        vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0],
        "rows interleave the classes"
    );
    let q = read_query(std::slice::from_ref(&query)).unwrap();
    assert_eq!(q.files.len(), 2);
    assert!(q.files[0].ends_with("a_class.png"));
    let mut x = vec![0f32; PIXELS];
    images::write_f32(&expected[1], &mut x);
    assert_eq!(
        &q.inputs[..PIXELS],
        &x[..],
        "query preprocessed exactly as training images"
    );
    let single = read_query(&[q.files[1].clone(), q.files[0].clone()]).unwrap();
    assert_eq!(single.files, vec![q.files[1].clone(), q.files[0].clone()]);

    // Bad inputs, each error naming the path.
    let e = err_text(read_support(&tmp.path().join("missing")));
    assert!(e.contains("missing") && e.contains("does not exist"), "{e}");
    let e = err_text(read_query(&[tmp.path().join("nope.png")]));
    assert!(e.contains("nope.png"), "{e}");
    let empty = support.join("c_empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = err_text(read_support(&support));
    assert!(
        e.contains(&empty.display().to_string()) && e.contains("no PNG"),
        "{e}"
    );
    std::fs::remove_dir(&empty).unwrap();
    let corrupt = support.join("a_class/broken.png");
    std::fs::write(&corrupt, b"definitely not a png").unwrap();
    let e = err_text(read_support(&support));
    assert!(
        e.contains(&corrupt.display().to_string()) && e.contains("PNG"),
        "{e}"
    );
    let e = err_text(read_query(std::slice::from_ref(&corrupt)));
    assert!(e.contains("broken.png"), "{e}");
    std::fs::remove_file(&corrupt).unwrap();
    let loose = support.join("loose.png");
    std::fs::write(&loose, b"x").unwrap();
    let e = err_text(read_support(&support));
    assert!(
        e.contains("loose.png") && e.contains("class sub-folder"),
        "{e}"
    );
    let empty_query = tmp.path().join("empty_query");
    std::fs::create_dir_all(&empty_query).unwrap();
    let e = err_text(read_query(std::slice::from_ref(&empty_query)));
    assert!(e.contains("empty_query") && e.contains("no PNG"), "{e}");
}
