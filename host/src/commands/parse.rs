//! `sluice parse`: a file, or the members of a ZIP archive, through a format plugin; records as JSON lines
//! on stdout.

use super::{Failure, load_config, plugin_host};
use sluice::config::Compression;
use sluice::parse::{ParseError, WholeChunks, parse_ranged, parse_stream};
use sluice::plugin::{FormatPlugin, PluginError, RangeRead, TemplateRun};
use sluice::source::{FileRanges, archive, decompressing, refuse_compressed};
use sluice::sync::member_format_other_than;
use std::io::{self, BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

pub fn parse_command(
    config_path: Option<&Path>,
    format: Option<&str>,
    dataflow: Option<&str>,
    extra_options: &[(String, String)],
    file: &Path,
) -> Result<(), Failure> {
    let config = load_config(config_path)?;
    let (plugin_name, mut options, compression) = match (format, dataflow) {
        (Some(format), _) => (format.to_string(), Vec::new(), Compression::Auto),
        (None, Some(dataflow)) => {
            let dataflow_config = config.dataflow(dataflow)?;
            let Some(format) = &dataflow_config.format else {
                return Err(Failure::Usage(format!("dataflow `{dataflow}` reads Stripe's API, not files")));
            };
            (format.plugin.clone(), format.option_pairs(), dataflow_config.file_format().compression)
        }
        (None, None) => unreachable!("clap requires --format or --dataflow"),
    };
    options.extend_from_slice(extra_options);
    let spec = config.plugin_spec(&plugin_name)?;
    let host = plugin_host(&config)?;
    let plugin = host.load_format(&spec).map_err(|e| Failure::Usage(e.to_string()))?;
    // As a run reads an archive: a member whose extension names another bundled format is read by it.
    let member_format = |member: &str| {
        let named = member_format_other_than(plugin.name(), member)?;
        let spec = config.plugin_spec(named).map_err(Failure::from);
        Some(spec.and_then(|spec| host.load_format(&spec).map_err(|e| Failure::Usage(e.to_string()))))
    };
    print_records(&plugin, None, file, compression, &options, &member_format)
}

/// The format a member is read with where it is not the plugin given, with its defaults: see
/// [`parse_command`].
pub type MemberFormat<'a> = dyn Fn(&str) -> Option<Result<FormatPlugin, Failure>> + 'a;

/// One object `sluice parse` reads: a file, or a member of a ZIP archive.
struct Object {
    file: PathBuf,
    member: Option<String>,
}

/// An object's bytes, as its plugin reads them.
enum Input {
    Stream(Box<dyn BufRead + Send>),
    Ranged(Box<dyn RangeRead>),
}

impl Object {
    /// The objects `path` names: the file; every member of an archive (`exports.zip`); or one member
    /// (`exports.zip!/orders/11.csv`), as a run's objects name them.
    fn named_by(path: &Path, compression: Compression) -> Result<Vec<Object>, Failure> {
        let text = path.to_string_lossy();
        if !path.exists()
            && let Some((file, member)) = archive::split(&text)
        {
            let member = Some(member.to_string());
            return Ok(vec![Object { file: PathBuf::from(file), member }]);
        }
        let file = path.to_path_buf();
        if !archive::is_archive(&text, compression) {
            return Ok(vec![Object { file, member: None }]);
        }
        let members = archive::members(open_ranges(&file)?)
            .map_err(|e| Failure::Input(format!("{}: not a readable ZIP archive: {e}", file.display())))?;
        Ok(members.into_iter().map(|(name, _)| Object { file: file.clone(), member: Some(name) }).collect())
    }

    /// How records and rejects name it.
    fn name(&self) -> String {
        match &self.member {
            Some(member) => format!("{}!/{member}", self.file.display()),
            None => self.file.display().to_string(),
        }
    }

    /// Its bytes for `plugin`: decompressed where they are gzip or zstd, or by ranges.
    fn open(&self, plugin: &FormatPlugin, compression: Compression) -> Result<Input, Failure> {
        let name = self.name();
        let unreadable = |e: io::Error| Failure::Input(format!("cannot read {name}: {e}"));
        let Some(member) = &self.member else {
            if plugin.reads_by_range() {
                refuse_compressed(&name, compression, plugin.name()).map_err(unreadable)?;
                return open_ranges(&self.file).map(Input::Ranged);
            }
            let file = std::fs::File::open(&self.file)
                .map_err(|e| Failure::Usage(format!("cannot open {}: {e}", self.file.display())))?;
            return decompressing(&name, compression, WholeChunks::new(file))
                .map(Input::Stream)
                .map_err(unreadable);
        };
        let ranges = open_ranges(&self.file)?;
        if plugin.reads_by_range() {
            refuse_compressed(member, compression, plugin.name()).map_err(unreadable)?;
            return archive::ranged(ranges, member).map(Input::Ranged).map_err(unreadable);
        }
        let stream = archive::stream(ranges, member).map_err(unreadable)?;
        decompressing(member, compression, stream).map(Input::Stream).map_err(unreadable)
    }
}

/// `file`, read by ranges.
fn open_ranges(file: &Path) -> Result<Box<dyn RangeRead>, Failure> {
    let opened = std::fs::File::open(file).and_then(FileRanges::new);
    let ranges = opened.map_err(|e| Failure::Usage(format!("cannot open {}: {e}", file.display())))?;
    Ok(Box::new(ranges))
}

/// Reads what `path` names (see [`Object::named_by`]) through `plugin`, and `template` where given, as a
/// stream or by ranges as the plugin reads: records as JSON lines on stdout, rejected rows and a summary
/// per object on stderr. A member that cannot be read fails alone: the others are still read, and the
/// command fails at the end, counting them.
pub fn print_records(
    plugin: &FormatPlugin,
    mut template: Option<&mut TemplateRun>,
    path: &Path,
    compression: Compression,
    options: &[(String, String)],
    member_format: &MemberFormat,
) -> Result<(), Failure> {
    let objects = Object::named_by(path, compression)?;
    let mut print = |object: &Object| {
        let other = object.member.as_deref().and_then(member_format).transpose()?;
        let (plugin, options) = match &other {
            Some(other) => (other, &[][..]),
            None => (plugin, options),
        };
        let input = object.open(plugin, compression)?;
        print_object(plugin, template.as_deref_mut(), &object.name(), options, input)
    };
    if let [object] = objects.as_slice() {
        return print(object);
    }
    let mut unread = 0;
    for object in &objects {
        match print(object) {
            Err(Failure::Input(message)) => {
                note!("error: {message}");
                unread += 1;
            }
            other => other?,
        }
    }
    match unread {
        0 => Ok(()),
        _ => Err(Failure::Input(format!(
            "{unread} of the {} members of {} could not be read",
            objects.len(),
            path.display()
        ))),
    }
}

/// Reads one object: see [`print_records`].
fn print_object(
    plugin: &FormatPlugin,
    template: Option<&mut TemplateRun>,
    object: &str,
    options: &[(String, String)],
    input: Input,
) -> Result<(), Failure> {
    let stdout = io::stdout();
    let mut records = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut rejects = io::stderr().lock();
    let through = match &template {
        Some(template) => format!("plugin `{}` and template `{}`", plugin.name(), template.plugin_name()),
        None => format!("plugin `{}`", plugin.name()),
    };
    let print = |parsed: sluice::plugin::Parsed| {
        for batch in &parsed.batches {
            for row in 0..batch.num_rows() {
                batch.write_json_row(row, &mut records)?;
            }
        }
        for reject in &parsed.rejects {
            writeln!(rejects, "rejected: {object} line {}: {}", reject.line, reject.reason)?;
        }
        Ok(())
    };
    let result = match input {
        Input::Ranged(input) => parse_ranged(plugin, template, object, options, input, print),
        Input::Stream(input) => parse_stream(plugin, template, object, options, input, print),
    };
    let flushed = records.flush();
    match result {
        Ok(summary) => {
            if let Err(error) = flushed
                && error.kind() != io::ErrorKind::BrokenPipe
            {
                return Err(Failure::Input(format!("writing records: {error}")));
            }
            let seconds = summary.elapsed.as_secs_f64();
            note!(
                "{object}: {} rows, {} rejected, {} bytes, {seconds:.3} s ({:.1} MB/s) via {through}",
                summary.rows,
                summary.rejected,
                summary.bytes,
                summary.bytes as f64 / 1e6 / seconds.max(1e-9),
            );
            Ok(())
        }
        // A reader that went away (`sluice parse ... | head`) is not an error of the file.
        Err(ParseError::Consume { source, .. }) if source.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        // Options the plugin refused are a configuration error, like an unknown plugin.
        Err(error @ ParseError::Open(PluginError::Format { .. })) => Err(Failure::Usage(error.to_string())),
        Err(error) => Err(Failure::Input(error.to_string())),
    }
}
