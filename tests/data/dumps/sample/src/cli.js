// Prints its arguments.
function main(args) {
  console.log(args.join(" "));
}

main(process.argv.slice(2));
