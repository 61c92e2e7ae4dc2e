//! A ticket's QR code as a PNG, for e-mail clients (which do not show SVG).
//! It holds exactly what the order page's QR holds: the signed code.

use qrcode::{Color, QrCode};

/// Pixels per module, and modules of white around the code (the standard's quiet zone).
const SCALE: usize = 6;
const QUIET: usize = 4;

pub fn png(code: &str) -> Result<Vec<u8>, String> {
    let qr = QrCode::new(code.as_bytes()).map_err(|e| format!("QR code: {e}"))?;
    let modules = qr.width();
    let colors = qr.to_colors();
    let side = (modules + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color == Color::Dark {
            let (mx, my) = (i % modules + QUIET, i / modules + QUIET);
            for y in my * SCALE..(my + 1) * SCALE {
                pixels[y * side + mx * SCALE..y * side + (mx + 1) * SCALE].fill(0);
            }
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side as u32, side as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(&pixels).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_png_shows_the_codes_modules() {
        let code = "AAAAAAAAAAAAAAAAAAAAAAAA.signature";
        let bytes = png(code).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().expect("a small image")];
        let info = reader.next_frame(&mut buf).unwrap();
        let qr = QrCode::new(code.as_bytes()).unwrap();
        let side = info.width as usize;
        assert_eq!(side, (qr.width() + 2 * QUIET) * SCALE);
        for (i, color) in qr.to_colors().iter().enumerate() {
            let (x, y) = ((i % qr.width() + QUIET) * SCALE + SCALE / 2, (i / qr.width() + QUIET) * SCALE + SCALE / 2);
            assert_eq!(buf[y * side + x] == 0, *color == Color::Dark, "module {i}");
        }
        assert_eq!(buf[0], 255, "quiet zone is white");
    }
}
